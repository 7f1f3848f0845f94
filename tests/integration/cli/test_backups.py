"""The CLI works without Airflow, from AIRFLOW_CONN_* and BACKUP_* variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from amprenta_backup.core.pgtools import PgConnInfo


def _uri(conn: PgConnInfo, dbname: str) -> str:
    return (f"postgresql://{conn.user}:{quote(conn.password or '', safe='')}@{conn.host}:"
            f"{conn.port}/{dbname}")


@pytest.fixture
def cli(source_conn: PgConnInfo, fresh_db: Callable[[str], str], tmp_path: Path
        ) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {"PATH": os.environ["PATH"], "AIRFLOW_CONN_PG_SOURCE": _uri(source_conn, "amprenta"),
           "AIRFLOW_CONN_BACKUP_CATALOG": _uri(source_conn, fresh_db("cli_catalog")),
           "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path / "b")}
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "amprenta_backup.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    return run


def test_backup_then_list_and_show(cli: Callable[..., subprocess.CompletedProcess[str]],
                                   source_conn: PgConnInfo) -> None:
    done = cli("backup", "pg_source", "--json")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["target"] == "pg_source" and manifest["table_counts"]["app.orders"] > 0
    listed = cli("list", "--json")
    assert [r["backup_id"] for r in json.loads(listed.stdout)] == [manifest["backup_id"]]
    table = cli("list")
    assert manifest["backup_id"] in table.stdout and "completed" in table.stdout
    shown = cli("show", manifest["backup_id"])
    assert "app.orders" in shown.stdout and manifest["sha256"] in shown.stdout
    assert (source_conn.password or "\0") not in done.stdout + done.stderr + shown.stdout


def test_exit_codes_for_bad_input(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    malformed = cli("show", "../../etc/passwd")
    assert malformed.returncode == 2 and "malformed" in malformed.stderr
    unknown = cli("show", "20260101T000000Z-00000000")
    assert unknown.returncode == 2 and "amprenta-backup list" in unknown.stderr
    missing_conn = cli("backup", "pg_nowhere")
    assert missing_conn.returncode == 2 and "AIRFLOW_CONN_PG_NOWHERE" in missing_conn.stderr
