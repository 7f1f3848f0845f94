"""``amprenta-backup restore-globals``: a backup's roles onto a new server, in a real process."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.sandbox.cluster import ClusterBase, ThrowawayCluster
from tests.integration.conftest import conninfo
from tests.support.cli import CliRunner, conn_uri

PASSWORD = "Cli-Globals-Pw-9"


@pytest.fixture
def cli_role(pg_cluster: ClusterBase) -> Iterator[str]:
    pg_cluster.execute(f"CREATE ROLE cli_app LOGIN PASSWORD '{PASSWORD}'")
    yield "cli_app"
    pg_cluster.execute("DROP ROLE cli_app")


def test_restore_globals_creates_the_roles_on_a_new_server(
    source_conn: PgConnInfo, fresh_db: Callable[[str], str], tmp_path: Path, cli_role: str,
) -> None:
    with ThrowawayCluster() as new:
        cli = CliRunner({"AIRFLOW_CONN_PG_SOURCE": conn_uri(source_conn),
                         "AIRFLOW_CONN_PG_NEW": conn_uri(conninfo(new, "postgres")),
                         "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(
                             source_conn, fresh_db("globals_catalog")),
                         "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path)})
        done = cli("backup", "pg_source", "--json")
        assert done.returncode == 0, done.stderr
        backup_id = json.loads(done.stdout)["backup_id"]

        dry = cli("restore-globals", backup_id, "--target-conn", "pg_new", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        planned = json.loads(dry.stdout)
        assert planned["dry_run"] and cli_role in planned["created_roles"]
        assert new.query("SELECT 1 FROM pg_roles WHERE rolname = %s", params=[cli_role]) == []

        real = cli("restore-globals", backup_id, "--target-conn", "pg_new")
        assert real.returncode == 0, real.stderr
        assert f"created {len(planned['created_roles'])} roles" in real.stdout
        assert "existing roles left as they are (postgres)" in real.stdout
        assert new.query("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                         params=[cli_role]) == [(True,)]
        assert PASSWORD not in dry.stdout + real.stdout + real.stderr
        assert "SCRAM-SHA-256" not in dry.stdout + real.stdout
