"""``amprenta-backup recover`` in a real process: three databases onto a NEW empty cluster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg

from amprenta_backup.core.models import Manifest
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pitr.localserver import free_port
from amprenta_backup.sandbox.cluster import ClusterBase, ThrowawayCluster
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.integration.conftest import conninfo
from tests.integration.recovery.conftest import SOURCE_DATABASES, Backed, server_env, uri


def _databases(cluster: ClusterBase) -> list[str]:
    return [r[0] for r in cluster.query("SELECT datname FROM pg_database ORDER BY 1")]


def _report(done_stdout: str) -> dict[str, object]:
    return dict(json.loads(done_stdout))


def _assert_recovered(pg_cluster: ClusterBase, new: ClusterBase, report: dict[str, object],
                      backed: Backed) -> None:
    assert report["passed"] is True, report["summary"]
    databases = {d["database"]: d for d in report["databases"]}  # type: ignore[attr-defined]
    assert set(databases) == set(SOURCE_DATABASES)
    for name in SOURCE_DATABASES:
        assert databases[name]["backup_id"] == backed.backups[name]
        assert {c["name"] for c in databases[name]["checks"]} >= {
            "row_counts", "foreign_keys", "check_constraints", "sequences"}
        assert databases[name]["rows"] > 0
        assert_databases_equal(pg_cluster, name, new, name)
    report_file = Path(str(report["report_uri"]).removeprefix("file://"))
    assert report_file.is_file() and "PASSED" in report_file.read_text()
    stored = json.loads(report_file.with_name("report.json").read_text())
    assert stored["rto_seconds"] == report["rto_seconds"] > 0


def _recovery_rows(conn: PgConnInfo) -> list[tuple[object, ...]]:
    with psycopg.connect(**conn.connect_kwargs()) as db:
        return db.execute("SELECT id, passed, rto_seconds, jsonb_array_length(databases) "
                          "FROM recovery_runs").fetchall()


def test_recover_onto_a_new_server(backed: Backed, pg_cluster: ClusterBase,
                                   new_server: ThrowawayCluster) -> None:
    env = server_env(new_server)
    plan = backed.run("recover", "--server", "pg_new", "--dry-run", env=env)
    assert plan.returncode == 0, plan.stderr
    assert "dry run: nothing was touched" in plan.stdout
    assert all(backed.backups[name] in plan.stdout for name in SOURCE_DATABASES)
    assert _databases(new_server) == ["postgres", "template0", "template1"]

    done = backed.run("recover", "--server", "pg_new", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = _report(done.stdout)
    _assert_recovered(pg_cluster, new_server, report, backed)
    assert "rebuild the catalog database" in str(report["catalog"])
    catalog = conninfo(pg_cluster, backed.catalog_db)
    assert [(r[0], r[1], r[3]) for r in _recovery_rows(catalog)] == [
        (report["recovery_id"], True, 3)]
    source = conninfo(pg_cluster, "postgres").password or "\0"
    assert source not in done.stdout + done.stderr


def test_recover_with_the_catalog_gone(backed: Backed, pg_cluster: ClusterBase,
                                       new_server: ThrowawayCluster) -> None:
    """The catalog's server is down: a new catalog database on the new server holds it all."""
    down = PgConnInfo(host="127.0.0.1", port=free_port(), user="postgres", password="x")
    reports = set(backed.storage.rglob("report.json"))
    env = {**server_env(new_server), "AIRFLOW_CONN_BACKUP_CATALOG": uri(down, "catalog")}
    plan = backed.run("recover", "--server", "pg_new", "--dry-run", "--json", env=env)
    assert plan.returncode == 0, plan.stderr
    assert "create the catalog database 'amprenta_catalog' on the new server" in \
        _report(plan.stdout)["catalog"]
    assert _databases(new_server) == ["postgres", "template0", "template1"]
    assert set(backed.storage.rglob("report.json")) == reports  # nor a report

    done = backed.run("recover", "--server", "pg_new", "--json", "--parallel", "3", env=env)
    assert done.returncode == 0, done.stderr
    report = _report(done.stdout)
    _assert_recovered(pg_cluster, new_server, report, backed)
    assert report["rebuilt_records"] == len(SOURCE_DATABASES)
    rows = _recovery_rows(conninfo(new_server, "amprenta_catalog"))
    assert [r[0] for r in rows] == [report["recovery_id"]]


def test_catalog_database_dropped_is_created_again(backed: Backed, pg_cluster: ClusterBase,
                                                   new_server: ThrowawayCluster) -> None:
    pg_cluster.drop_database(backed.catalog_db)
    done = backed.run("recover", "--server", "pg_new", "--json", "--target",
                      "pg_src.dr_audit", env=server_env(new_server))
    assert done.returncode == 0, done.stderr
    report = _report(done.stdout)
    assert [d["database"] for d in report["databases"]] == ["dr_audit"]  # type: ignore[attr-defined]
    assert_databases_equal(pg_cluster, "dr_audit", new_server, "dr_audit")
    assert pg_cluster.database_exists(backed.catalog_db)
    listed = backed.run("list", "--json")
    assert {r["backup_id"] for r in json.loads(listed.stdout)} == set(backed.backups.values())


def test_nonempty_server_needs_approval_and_a_mismatch_exits_1(
    backed: Backed, new_server: ThrowawayCluster, tmp_path: Path,
) -> None:
    new_server.create_database("someone_else")
    storage = tmp_path / "copy"
    shutil.copytree(backed.storage, storage)
    env = {**server_env(new_server), "BACKUP_LOCAL_PATH": str(storage)}
    refused = backed.run("recover", "--server", "pg_new", env=env)
    assert refused.returncode == 2 and "already holds database(s) someone_else" in refused.stderr
    assert _databases(new_server) == ["postgres", "someone_else", "template0", "template1"]

    manifest_file = next(storage.rglob(f"{backed.backups['dr_crm']}/manifest.json"))
    manifest = Manifest.from_json(manifest_file.read_bytes())
    manifest.table_counts["app.orders"] += 1  # the backup says one row more than it holds
    manifest_file.write_bytes(manifest.to_json())
    done = backed.run("recover", "--server", "pg_new", "--allow-nonempty", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout and "app.orders" in done.stdout
    assert "dr_shop" in done.stdout and new_server.database_exists("dr_shop")
