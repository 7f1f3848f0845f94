"""The disaster_recovery DAG through dag.test(): backups in storage, a NEW empty server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase, ThrowawayCluster
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.airflow.conftest import manual_gated_dag, postgres_conn_json
from tests.airflow.test_restore_dag import _Approver
from tests.integration.conftest import conninfo
from tests.support.backups import make_backup


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.fixture
def backed_up(backup_env: dict[str, Any], pg_cluster: ClusterBase, new_server: ThrowawayCluster,
              monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Both sample databases backed up; ``pg_new`` names the new server."""
    storage = LocalStorage(backup_env["root"])
    ids = {db: make_backup(storage, backup_env["catalog"], conninfo(pg_cluster, db),
                           target=target).backup_id
           for db, target in (("af_source", "pg_source"), ("af_second", "pg_source.af_second"))}
    monkeypatch.setenv("AIRFLOW_CONN_PG_NEW", postgres_conn_json(new_server, "postgres"))
    return ids


def test_manual_only_with_a_typed_form_and_the_approval_before_the_recovery(
    airflow_db: None,
) -> None:
    dag = manual_gated_dag("disaster_recovery", "approve_nonempty", "recover")
    schema = {name: param.schema for name, param in dag.params.items()}
    assert schema["parallel"]["type"] == "integer" and dag.params["parallel"] == 2
    assert schema["targets"]["type"] == "array" and schema["dry_run"]["type"] == "boolean"
    assert dag.get_task("recover").upstream_task_ids == {"plan", "approve_nonempty",
                                                         "pause_writers"}
    # the writers may be paused (off by default) on both ways to recover: straight from the
    # plan (an empty server) and after the approval; their teardown resumes them
    assert dag.get_task("pause_writers").upstream_task_ids == {"plan", "approve_nonempty"}
    assert dag.get_task("resume_writers").is_teardown and dag.params["pause_writers"] is False


def test_recovers_onto_an_empty_server_without_an_approval(
    run_dag: Callable[..., Any], backed_up: dict[str, str], pg_cluster: ClusterBase,
    new_server: ThrowawayCluster, backup_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKUP_WRITERS", "pg_source=load_orders")  # writes to af_source
    dry = run_dag("disaster_recovery", run_conf={"server_conn_id": "pg_new", "dry_run": True})
    assert _states(dry) == {"plan": "success", "approve_nonempty": "skipped",
                            "pause_writers": "skipped", "recover": "skipped",
                            "resume_writers": "skipped"}
    assert not new_server.database_exists("af_source")
    plan = dry.get_task_instance("plan").xcom_pull(task_ids="plan", key="plan")
    assert plan["pipelines"]["writers"] == {"load_orders": ["BACKUP_WRITERS"]}
    assert plan["pipelines"]["lines"] == [
        "1 DAG writes to database 'af_source': load_orders (BACKUP_WRITERS); pause it by hand "
        "before it writes (pause_writers is off) (Airflow's DAGs were not read: set "
        "BACKUP_AIRFLOW_API_CONN_ID; BACKUP_WRITERS only)"]

    dag_run = run_dag("disaster_recovery", run_conf={"server_conn_id": "pg_new"})
    assert _states(dag_run) == {"plan": "success", "approve_nonempty": "skipped",
                                "pause_writers": "skipped", "recover": "success",
                                "resume_writers": "skipped"}
    for database in backed_up:
        assert_databases_equal(pg_cluster, database, new_server, database)
    report = dag_run.get_task_instance("recover").xcom_pull(task_ids="recover", key="report")
    assert report["passed"] is True and report["rto_seconds"] > 0
    assert {d["backup_id"] for d in report["databases"]} == set(backed_up.values())
    stored = json.loads((backup_env["root"] / report["report_uri"].split("/backups/", 1)[1])
                        .with_name("report.json").read_text())
    assert stored["recovery_id"] == report["recovery_id"]


def test_a_nonempty_server_waits_for_an_explicit_approve(
    run_dag: Callable[..., Any], backed_up: dict[str, str], new_server: ThrowawayCluster,
) -> None:
    new_server.create_database("already_here")
    dag_run = run_dag("disaster_recovery", run_conf={"server_conn_id": "pg_new"},
                      mark_success_pattern="approve_nonempty")
    assert _states(dag_run) == {"plan": "success", "approve_nonempty": "success",
                                "pause_writers": "skipped", "recover": "failed",
                                "resume_writers": "skipped"}
    plan = dag_run.get_task_instance("plan").xcom_pull(task_ids="plan", key="plan")
    assert plan["existing_databases"] == ["already_here"] and plan["needs_approval"] is True
    assert not any(new_server.database_exists(db) for db in backed_up)


def test_an_approve_through_the_api_lets_it_write_beside_the_databases_there(
    run_dag: Callable[..., Any], backed_up: dict[str, str], pg_cluster: ClusterBase,
    new_server: ThrowawayCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    new_server.create_database("already_here")
    approver = _Approver("Approve", dag_id="disaster_recovery", task_id="approve_nonempty")
    approver.start()
    dag_run = run_dag("disaster_recovery", run_conf={"server_conn_id": "pg_new"})
    approver.join(timeout=30)

    assert approver.error is None and approver.status == 200
    assert _states(dag_run) == {"plan": "success", "approve_nonempty": "success",
                                "pause_writers": "skipped", "recover": "success",
                                "resume_writers": "skipped"}
    for database in backed_up:
        assert_databases_equal(pg_cluster, database, new_server, database)
    assert new_server.database_exists("already_here")
