"""Storage is the source of truth: with the catalog gone, the CLI answers from the manifests,
and ``rebuild-catalog`` creates the catalog database it needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pitr.localserver import free_port
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.integration.cli.test_backups import _uri

Run = Callable[..., subprocess.CompletedProcess[str]]
UNREACHABLE = "warning: the catalog is unreachable"


@pytest.fixture
def cli_env(source_conn: PgConnInfo, fresh_db: Callable[[str], str], tmp_path: Path
            ) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "AIRFLOW_CONN_PG_SOURCE": _uri(source_conn, "amprenta"),
            "AIRFLOW_CONN_BACKUP_CATALOG": _uri(source_conn, fresh_db("fallback_catalog")),
            "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path / "b")}


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "amprenta_backup.cli", *args], env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def backed_up(cli_env: dict[str, str]) -> dict[str, object]:
    done = run_cli(cli_env, "backup", "pg_source", "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def json_warned(stderr: str) -> list[dict[str, dict[str, object]]]:
    """stderr under ``--json``: every line one JSON object, the first the warning that the
    catalog is unreachable, said once."""
    lines = [json.loads(line) for line in stderr.splitlines()]
    said = [line for line in lines if "catalog is unreachable (" in str(line)]
    assert said == lines[:1] and list(lines[0]) == ["warning"], stderr
    assert "; answering from the manifests in file://" in str(lines[0]["warning"]["message"])
    return lines


def _answers_from_storage(env: dict[str, str], backup: dict[str, object]) -> None:
    backup_id = str(backup["backup_id"])
    listed = run_cli(env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["backup_id"] for r in json.loads(listed.stdout)] == [backup_id]
    assert len(json_warned(listed.stderr)) == 1
    shown = run_cli(env, "show", backup_id)
    assert shown.returncode == 0, shown.stderr
    assert str(backup["sha256"]) in shown.stdout and "app.orders" in shown.stdout
    # said once, in the CLI's words (the engine's own log line is info)
    assert shown.stderr.startswith(UNREACHABLE) and len(shown.stderr.splitlines()) == 1
    assert ": every backup shows as completed, and nothing is recorded\n" in shown.stderr
    plan = run_cli(env, "restore", backup_id, "--target-conn", "pg_source", "--database",
                   "fallback_never_created", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["plan"]["backup_id"] == backup_id
    json_warned(plan.stderr)
    # a script parsing stderr line by line meets the warning, then the error, last
    unknown = run_cli(env, "show", "20200101T000000Z-00000000", "--json")
    assert unknown.returncode == 2 and unknown.stdout == ""
    error = json_warned(unknown.stderr)[-1]["error"]
    assert error["type"] == "PreconditionError" and error["exit_code"] == 2
    assert "manifests in" in str(error["message"])


def test_catalog_database_missing_then_rebuild_creates_it(
    cli_env: dict[str, str], backed_up: dict[str, object], source_conn: PgConnInfo,
    pg_cluster: ClusterBase,
) -> None:
    gone = "fallback_catalog_gone"
    pg_cluster.drop_database(gone)
    env = {**cli_env, "AIRFLOW_CONN_BACKUP_CATALOG": _uri(source_conn, gone)}
    try:
        _answers_from_storage(env, backed_up)
        assert not pg_cluster.database_exists(gone)  # reads create nothing

        restored = "fallback_restored"
        pg_cluster.drop_database(restored)
        done = run_cli(env, "restore", str(backed_up["backup_id"]), "--target-conn",
                       "pg_source", "--database", restored)
        assert done.returncode == 0, done.stderr
        assert "row counts match the manifest" in done.stdout
        assert_databases_equal(pg_cluster, "amprenta", pg_cluster, restored)
        pg_cluster.drop_database(restored)

        verify = run_cli(env, "verify", str(backed_up["backup_id"]), "--json")
        assert verify.returncode == 0, verify.stderr
        assert json.loads(verify.stdout)["ok"] is True
        logged = json_warned(verify.stderr)[1]["warning"]  # the engine's, as an object too
        assert logged["logger"] == "amprenta_backup.core.verify"
        assert " is not recorded: " in logged["message"]

        rebuilt = run_cli(env, "rebuild-catalog", "--json")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert json.loads(rebuilt.stdout) | {"storage": None} == {
            "rebuilt": 1, "catalog_created": True, "storage": None, "skipped": [],
            "conflicts": []}
        assert pg_cluster.database_exists(gone)
        listed = run_cli(env, "list", "--json")
        assert UNREACHABLE not in listed.stderr
        assert [r["backup_id"] for r in json.loads(listed.stdout)] == [backed_up["backup_id"]]
        again = run_cli(env, "rebuild-catalog", "--json")
        assert json.loads(again.stdout)["catalog_created"] is False
    finally:
        pg_cluster.drop_database(gone)


def test_catalog_server_stopped(cli_env: dict[str, str], backed_up: dict[str, object],
                                source_conn: PgConnInfo) -> None:
    # nothing listens on a fresh free port: the client sees what a stopped server gives
    stopped = PgConnInfo(host="127.0.0.1", port=free_port(), user=source_conn.user,
                         password=source_conn.password)
    env = {**cli_env, "AIRFLOW_CONN_BACKUP_CATALOG": _uri(stopped, "catalog")}
    _answers_from_storage(env, backed_up)
    rebuilt = run_cli(env, "rebuild-catalog")
    assert rebuilt.returncode != 0
    assert "cannot create the catalog database 'catalog'" in rebuilt.stderr
    assert (source_conn.password or "\0") not in rebuilt.stderr
