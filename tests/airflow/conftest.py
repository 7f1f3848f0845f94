"""Airflow fixtures: a migrated metadata DB, connections as env vars, and a DAG runner."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.dataset import load_sample
from amprenta_backup.sandbox.s3server import MotoServer
from tests.support.airflow_env import REPO


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the session's SQLite metadata DB once."""
    from airflow.utils import db

    db.initdb()


def manual_gated_dag(dag_id: str, approval_task_id: str, run_task_id: str) -> Any:
    """The DAG ``dag_id`` parsed from dags/, checked for what every manual DAG with an approval
    gate is: manual runs only, one at a time, every form field described, and ``plan`` ->
    approval -> ``run_task_id`` (``plan`` also straight to ``run_task_id``; the approval may
    go through ``pause_writers`` too)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = DagBag(dag_folder=str(REPO / "dags")).dags[dag_id]
    assert dag.timetable.can_be_scheduled is False and dag.max_active_runs == 1
    assert {str(t.value) for t in dag.allowed_run_types} == {"manual"}
    assert all(param.description for param in dag.params.values())
    approve, run = dag.get_task(approval_task_id), dag.get_task(run_task_id)
    assert isinstance(approve, ApprovalOperator)
    assert approve.upstream_task_ids == {"plan"}
    assert run.upstream_task_ids - {"pause_writers"} == {"plan", approval_task_id}
    return dag


def postgres_conn_json(cluster: ClusterBase, dbname: str, password: str | None = None) -> str:
    return json.dumps({"conn_type": "postgres", "host": cluster.host, "port": cluster.port,
                       "login": cluster.user, "password": password or cluster.password,
                       "schema": dbname})


@pytest.fixture(scope="session")
def sample_dbs(pg_cluster: ClusterBase) -> tuple[str, str]:
    """Two sample databases on the cluster: ``af_source`` and ``af_second``."""
    load_sample(pg_cluster, "af_source")
    load_sample(pg_cluster, "af_second", rows=500)
    return "af_source", "af_second"


@pytest.fixture
def backup_env(monkeypatch: pytest.MonkeyPatch, pg_cluster: ClusterBase, tmp_path: Path,
               sample_dbs: tuple[str, str], airflow_db: None) -> dict[str, Any]:
    """Connections and BACKUP_* settings for a local-storage run, with a fresh catalog."""
    catalog_db = f"af_catalog_{tmp_path.name[-12:].replace('-', '_').lower()}"
    pg_cluster.create_database(catalog_db)
    monkeypatch.setenv("AIRFLOW_CONN_PG_SOURCE", postgres_conn_json(pg_cluster, sample_dbs[0]))
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_CATALOG", postgres_conn_json(pg_cluster, catalog_db))
    monkeypatch.setenv("BACKUP_TARGETS", f"pg_source,pg_source:{sample_dbs[1]}")
    monkeypatch.setenv("BACKUP_STORAGE_TYPE", "local")
    monkeypatch.setenv("BACKUP_LOCAL_PATH", str(tmp_path / "backups"))
    info = pg_cluster.conninfo(catalog_db)
    catalog = Catalog(PgConnInfo(host=info["host"], port=int(info["port"]), user=info["user"],
                                 dbname=catalog_db, password=info["password"]))
    return {"catalog": catalog, "root": tmp_path / "backups", "catalog_db": catalog_db}


@pytest.fixture
def s3_env(backup_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
           moto_server: MotoServer) -> dict[str, Any]:
    """The same, with storage in a bucket of the moto server behind an ``aws`` connection."""
    bucket = moto_server.create_bucket(f"airflow-{backup_env['catalog_db'][-8:]}".replace("_", "-"))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_BACKUPS", json.dumps({
        "conn_type": "aws", "login": moto_server.access_key, "password": moto_server.secret_key,
        "extra": {"endpoint_url": moto_server.endpoint_url, "region_name": moto_server.region},
    }))
    monkeypatch.setenv("BACKUP_STORAGE_TYPE", "s3")
    monkeypatch.setenv("BACKUP_AWS_CONN_ID", "aws_backups")
    monkeypatch.setenv("BACKUP_S3_BUCKET", bucket)
    return {**backup_env, "bucket": bucket, "client": moto_server.client()}


@pytest.fixture
def run_dag(airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Parse ``dags/`` and run one DAG with ``dag.test()``; retries off so failures are quick."""
    monkeypatch.setenv("BACKUP_TASK_RETRIES", "0")
    # dag.test() of a DAG with a Deadline Alert crashes once the run succeeds (Airflow 3.3.2,
    # apache/airflow#73428); a test that needs the deadline sets the hours itself
    monkeypatch.setenv("BACKUP_DEADLINE_HOURS", "0")

    def run(dag_id: str, **kwargs: Any) -> Any:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(REPO / "dags"))
        assert bag.import_errors == {}
        return bag.dags[dag_id].test(**kwargs)

    yield run


WRONG_PASSWORD = "N0t-The-Right-Pa55"


@pytest.fixture
def run_with_wrong_password(run_dag: Callable[..., Any], backup_env: dict[str, Any],
                            pg_cluster: ClusterBase, monkeypatch: pytest.MonkeyPatch
                            ) -> Callable[[datetime], Any]:
    """Run daily_backup for one target whose connection has the wrong password."""
    def run(when: datetime) -> Any:
        monkeypatch.setenv("AIRFLOW_CONN_PG_SOURCE",
                           postgres_conn_json(pg_cluster, "af_source", password=WRONG_PASSWORD))
        monkeypatch.setenv("BACKUP_TARGETS", "pg_source")
        return run_dag("daily_backup", logical_date=when, run_after=when)

    return run
