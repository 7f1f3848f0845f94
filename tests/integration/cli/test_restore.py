"""``amprenta-backup verify|restore|download`` in a real process: output, files, exit codes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from amprenta_backup.core.pgtools import PgConnInfo, tool
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.integration.cli.test_backups import cli
from tests.support.backups import flip_byte, rewrite

Cli = Callable[..., subprocess.CompletedProcess[str]]
SHARED_FIXTURES = (cli,)  # test_cli.py's `cli` (env from AIRFLOW_CONN_*, local storage)


@pytest.fixture
def backup(cli: Cli) -> dict[str, object]:
    done = cli("backup", "pg_source", "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_verify_prints_the_outcome_and_exits_3_when_corrupt(
    cli: Cli, backup: dict[str, object], tmp_path: Path,
) -> None:
    intact = cli("verify", str(backup["backup_id"]), "--json", "--progress")
    assert intact.returncode == 0, intact.stderr
    assert json.loads(intact.stdout)["status"] == "verified"
    progress = json.loads(intact.stderr.splitlines()[-1])["progress"]  # --json: JSON Lines
    assert progress["label"] == "verify" and progress["bytes_per_second"] > 0
    assert progress["read_bytes"] == progress["total_bytes"] == backup["stored_bytes"]

    rewrite(LocalStorage(tmp_path / "b"), str(backup["key"]), flip_byte)
    corrupt = cli("verify", str(backup["backup_id"]))
    assert corrupt.returncode == 3
    assert f"backup {backup['backup_id']} of target pg_source is CORRUPT: sha256" in corrupt.stderr
    assert "corrupt" in cli("list").stdout


def test_restore_dry_run_then_restore_then_refuse_the_same_name(
    cli: Cli, backup: dict[str, object], pg_cluster: ClusterBase, source_conn: PgConnInfo,
) -> None:
    target = "cli_restored"
    pg_cluster.drop_database(target)
    try:
        plan = cli("restore", "latest", "--from", "pg_source", "--database", target,
                   "--dry-run", "--json")
        assert plan.returncode == 0, plan.stderr
        assert json.loads(plan.stdout)["plan"]["backup_id"] == backup["backup_id"]
        assert not pg_cluster.database_exists(target)

        done = cli("restore", str(backup["backup_id"]), "--server", "pg_source",
                   "--database", target, "--jobs", "2")
        assert done.returncode == 0, done.stderr
        assert "row counts match the manifest" in done.stdout
        assert_databases_equal(pg_cluster, "amprenta", pg_cluster, target)

        again = cli("restore", str(backup["backup_id"]), "--database", target)
        assert again.returncode == 2 and "already exists" in again.stderr
        replace = cli("restore", str(backup["backup_id"]), "--database", target,
                      "--mode", "replace")
        assert replace.returncode == 2 and f"as --confirm {target} to go ahead" in replace.stderr
        output = done.stdout + done.stderr + again.stderr + plan.stdout
        assert (source_conn.password or "\0") not in output
    finally:
        pg_cluster.drop_database(target)


def test_download_writes_a_checked_archive_or_nothing(
    cli: Cli, backup: dict[str, object], tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    done = cli("download", str(backup["backup_id"]), str(out), "--json")
    assert done.returncode == 0, done.stderr
    path = Path(json.loads(done.stdout)["path"])
    assert path == out / f"{backup['backup_id']}.pgc" and path.stat().st_size == backup["raw_bytes"]
    listing = subprocess.run([tool("pg_restore"), "--list", str(path)], capture_output=True)
    assert listing.returncode == 0 and b"TABLE DATA app orders" in listing.stdout

    raw = cli("download", str(backup["backup_id"]), str(out / "copy.zst"), "--raw")
    assert raw.returncode == 0 and (out / "copy.zst").stat().st_size == backup["stored_bytes"]
    exists = cli("download", str(backup["backup_id"]), str(path))
    assert exists.returncode == 2 and "already exists" in exists.stderr

    rewrite(LocalStorage(tmp_path / "b"), str(backup["key"]), flip_byte)
    corrupt = cli("download", str(backup["backup_id"]), str(out / "bad.pgc"))
    assert corrupt.returncode == 3 and "nothing was written" in corrupt.stderr
    assert sorted(p.name for p in out.iterdir()) == [path.name, "copy.zst"]
