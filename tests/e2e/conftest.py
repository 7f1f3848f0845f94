"""One real Airflow deployment for the e2e package, over the session's Postgres and moto."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.storage import S3Storage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.dataset import load_sample
from amprenta_backup.sandbox.s3server import MotoServer
from tests.airflow.conftest import postgres_conn_json
from tests.integration.conftest import conninfo
from tests.support.airflow_deployment import ADMIN, AirflowDeployment
from tests.support.process_group import GroupMemory

SOURCE_DB = "e2e_source"
CATALOG_DB = "e2e_catalog"
METADATA_DB = "airflow_meta"
OUTSIDER = "outsider"  # a logged-in viewer who may read no DAG (auth/no_dag_access_auth.py)
BUCKET = "e2e-backups"
TARGET = "pg_source"
REPLAY_DB = "e2e_replay"  # written by pipeline_dags/load_events.py through pg_replay
PIPELINE_BUNDLE = "e2e-pipelines"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
_CALL_FAILED = pytest.StashKey[bool]()
_FIGURES = pytest.StashKey[list[str]]()


@dataclass(frozen=True)
class E2ESetup:
    """What the deployment backs up and where: the source database, storage and catalog.

    :param cluster: the session's PostgreSQL cluster (source, catalog and metadata DBs)
    :param storage: the bucket on the session's moto server that backups go to
    :param catalog: the backup catalog the deployment writes
    :param env: connections and ``BACKUP_*`` settings given to every Airflow component
    """

    cluster: ClusterBase
    storage: S3Storage
    catalog: Catalog
    env: dict[str, str]


def deployment_setup(cluster: ClusterBase, moto: MotoServer, sources: Mapping[str, str],
                     catalog_db: str, metadata_db: str, bucket: str) -> E2ESetup:
    """Fresh catalog and metadata databases and a bucket, and the env naming them: one
    ``AIRFLOW_CONN_<ID>`` per source (``{conn_id: database}``), the ``BACKUP_TARGETS``,
    S3 storage through the ``aws_backups`` connection, no task retries."""
    for name in (catalog_db, metadata_db):
        cluster.drop_database(name)
        cluster.create_database(name)
    moto.create_bucket(bucket)
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": postgres_conn_json(cluster, dbname)
           for conn_id, dbname in sources.items()}
    env.update({
        "AIRFLOW_CONN_BACKUP_CATALOG": postgres_conn_json(cluster, catalog_db),
        "AIRFLOW_CONN_AWS_BACKUPS": json.dumps({
            "conn_type": "aws", "login": moto.access_key, "password": moto.secret_key,
            "extra": {"endpoint_url": moto.endpoint_url, "region_name": moto.region},
        }),
        "BACKUP_TARGETS": ",".join(sources),
        "BACKUP_STORAGE_TYPE": "s3",
        "BACKUP_AWS_CONN_ID": "aws_backups",
        "BACKUP_S3_BUCKET": bucket,
        "BACKUP_TASK_RETRIES": "0",
    })
    return E2ESetup(cluster=cluster, storage=S3Storage(moto.client(), bucket),
                    catalog=Catalog(conninfo(cluster, catalog_db)), env=env)


def pipeline_env(cluster: ClusterBase) -> dict[str, str]:
    """A second DAG bundle, ``pipeline_dags/`` (two producers of the source database, an
    unrelated DAG and a producer of :data:`REPLAY_DB`), the Assets and connection those use,
    and the api-server connection the restore's plan task reads them through."""
    info = cluster.conninfo(SOURCE_DB)
    server = f"postgres://{info['host']}:{info['port']}"
    bundles = [{"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
               {"name": PIPELINE_BUNDLE, "classpath": LOCAL_BUNDLE,
                "kwargs": {"path": str(Path(__file__).with_name("pipeline_dags"))}}]
    return {"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "E2E_SOURCE_ASSET": f"{server}/{SOURCE_DB}/public/orders",
            "E2E_OTHER_ASSET": f"{server}/{CATALOG_DB}/public/other",
            "BACKUP_AIRFLOW_API_CONN_ID": "airflow_api",
            "AIRFLOW_CONN_PG_REPLAY": postgres_conn_json(cluster, REPLAY_DB)}


def auth_env() -> dict[str, str]:
    """The admin, and :data:`OUTSIDER`, refused every DAG by the deployment's auth manager."""
    return {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin,{OUTSIDER}:viewer",
            "AIRFLOW__CORE__AUTH_MANAGER": "no_dag_access_auth.NoDagAccessAuthManager",
            "E2E_NO_DAG_ACCESS_USERS": OUTSIDER,
            "PYTHONPATH": str(Path(__file__).with_name("auth"))}


def metadata_url(cluster: ClusterBase, dbname: str) -> str:
    """SQLAlchemy URL of a metadata database on the cluster."""
    info = cluster.conninfo(dbname)
    return AirflowDeployment.postgres_url(info["host"], info["port"], info["user"],
                                          info["password"], dbname)


@pytest.fixture(scope="package")
def e2e(pg_cluster: ClusterBase, moto_server: MotoServer) -> E2ESetup:
    """A sample source database, an empty catalog and bucket, and the env that names them."""
    load_sample(pg_cluster, SOURCE_DB)
    return deployment_setup(pg_cluster, moto_server, {TARGET: SOURCE_DB}, CATALOG_DB,
                            METADATA_DB, BUCKET)


@pytest.fixture(scope="package")
def deployment(e2e: E2ESetup, tmp_path_factory: pytest.TempPathFactory,
               request: pytest.FixtureRequest) -> Iterator[AirflowDeployment]:
    """scheduler, dag-processor, triggerer and api-server, started once for the package."""
    began = time.monotonic()
    airflow = AirflowDeployment(tmp_path_factory.mktemp("airflow-e2e"),
                                metadata_url(e2e.cluster, METADATA_DB),
                                env={**e2e.env, **pipeline_env(e2e.cluster), **auth_env()})
    airflow.env["AIRFLOW_CONN_AIRFLOW_API"] = json.dumps({
        "conn_type": "http", "host": airflow.base_url, "login": ADMIN,
        "password": airflow.admin_password})
    airflow.start()
    idle = airflow.memory()
    try:
        yield airflow
    finally:
        busy = airflow.peak_memory()
        airflow.stop()
        _report(request, airflow, idle, busy, time.monotonic() - began)


@pytest.fixture(scope="package")
def daily_backup_run(deployment: AirflowDeployment) -> dict[str, Any]:
    """One ``daily_backup`` run triggered through the REST API and followed to its end."""
    return deployment.run_dag("daily_backup", conf={}, timeout=150)


@pytest.fixture(scope="package")
def dashboard_catalog(e2e: E2ESetup, daily_backup_run: dict[str, Any]) -> WebCatalog:
    """The catalog the dashboard tests read: the DAG run's backup, and real ones made here
    (a verified backup, a drill, a failed backup of a broken target, health results)."""
    assert daily_backup_run["state"] == "success", daily_backup_run["tasks"]
    return fill_web_catalog(e2e)


def _report(request: pytest.FixtureRequest, airflow: AirflowDeployment,
            idle: dict[str, GroupMemory], busy: dict[str, GroupMemory], wall: float) -> None:
    """Keep the deployment's timings and memory for the terminal summary."""
    t = airflow.timings
    lines = [f"migrate {t['migrate_s']:.1f} s, healthy {t['healthy_s']:.1f} s after start, "
             f"stopped in {t['stop_s']:.1f} s ({t['stop_killed_groups']:.0f} groups needed "
             f"SIGKILL); deployment up for {wall:.1f} s"]
    for label, usage in (("just started", idle), ("peak in runs", busy)):
        for name, memory in usage.items():
            lines.append(f"memory {label:<12} {name:<13} {memory.describe()}")
    request.config.stash[_FIGURES] = lines


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.write_sep("-", "e2e deployment figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def _log_tails_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed e2e test, print the tail of every component's log."""
    yield
    if request.node.stash.get(_CALL_FAILED, False) and "deployment" in request.fixturenames:
        airflow: AirflowDeployment = request.getfixturevalue("deployment")
        print(airflow.log_tails(60))


from tests.e2e.web_catalog import WebCatalog, fill_web_catalog  # noqa: E402  (needs E2ESetup)
