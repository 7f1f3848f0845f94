"""``amprenta-backup copy`` and ``--from-copy`` in a real process, with a local primary and a
local copy folder: output, exit codes, and a restore that falls back to the copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.integration.cli.test_backups import _uri
from tests.support.backups import flip_byte, rewrite


def test_copy_verify_from_copy_and_a_restore_that_falls_back_to_it(
    source_conn: PgConnInfo, fresh_db: Callable[[str], str], tmp_path: Path,
    pg_cluster: ClusterBase,
) -> None:
    env = {"PATH": os.environ["PATH"], "AIRFLOW_CONN_PG_SOURCE": _uri(source_conn, "amprenta"),
           "AIRFLOW_CONN_BACKUP_CATALOG": _uri(source_conn, fresh_db("copy_catalog")),
           "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path / "primary")}

    def cli(*args: str, copy: bool = True) -> subprocess.CompletedProcess[str]:
        extra = {"BACKUP_COPY_STORAGE_TYPE": "local",
                 "BACKUP_COPY_LOCAL_PATH": str(tmp_path / "copy")} if copy else {}
        return subprocess.run([sys.executable, "-m", "amprenta_backup.cli", *args],
                              env={**env, **extra}, capture_output=True, text=True, timeout=120)

    backup = json.loads(cli("backup", "pg_source", "--json").stdout)
    unset = cli("copy", copy=False)
    assert unset.returncode == 2 and "BACKUP_COPY_STORAGE_TYPE" in unset.stderr
    copied = cli("copy", "latest", "--target", "pg_source", "--json")
    assert copied.returncode == 0, copied.stderr
    row = json.loads(copied.stdout)
    assert row["backup_id"] == backup["backup_id"] and row["status"] == "verified"
    assert row["sha256"] == backup["sha256"] and row["location"].startswith(
        (tmp_path / "copy").as_uri())

    rewrite(LocalStorage(tmp_path / "primary"), backup["key"], flip_byte)
    from_copy = cli("verify", backup["backup_id"], "--from-copy")
    assert from_copy.returncode == 0 and "is intact" in from_copy.stdout, from_copy.stderr
    assert cli("verify", backup["backup_id"]).returncode == 3  # the primary is damaged

    name = fresh_db("cli_from_copy")
    pg_cluster.drop_database(name)
    done = cli("restore", backup["backup_id"], "--database", name, "--target-conn", "pg_source")
    assert done.returncode == 0, done.stderr
    assert "falling back to the copy" in done.stderr and (tmp_path / "copy").as_uri() in \
        done.stdout
    assert_databases_equal(pg_cluster, "amprenta", pg_cluster, name)

    kept = cli("cleanup", "--copy", "--dry-run")
    assert kept.returncode == 0 and "would remove 0 backups" in kept.stdout, kept.stderr
