"""A CeleryExecutor deployment: Redis, scheduler, dag-processor, triggerer, api-server and two
Celery workers that record their own names as the task instances' hostnames."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.dataset import load_sample
from amprenta_backup.sandbox.s3server import MotoServer
from tests.e2e.conftest import E2ESetup, deployment_setup, metadata_url
from tests.support import hostnames
from tests.support.airflow_deployment import COMPONENTS, AirflowDeployment, Component
from tests.support.airflow_env import REPO
from tests.support.redis_server import RedisServer

SOURCES = {"pg_a": "dist_a", "pg_b": "dist_b", "pg_c": "dist_c"}  # conn id: database
WORKERS = ("worker-a", "worker-b")
SERVER_QUEUE = "pg-server"  # BACKUP_SERVER_TASKS_QUEUE: only worker-b has the server tools
METADATA_DB = "dist_meta"
HEARTBEAT_TIMEOUT_S = 15  # a killed worker's task is failed (and retried) after this long
HEARTBEAT_INTERVAL_S = 2  # a live task's heartbeat: 7 of them may be late before it is failed


def worker(name: str, queues: str) -> Component:
    """``airflow celery worker`` named ``name``: one task at a time, so a second task waits
    for the other worker instead of queueing behind a busy one."""
    return Component(
        name, ("celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", "1",
               "--queues", queues, "--skip-serve-logs", "--without-mingle", "--without-gossip"),
        env={"AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.support.hostnames.from_env",
             hostnames.ENV: name, "PYTHONPATH": str(REPO)},
        ready=f"{name}@")


@pytest.fixture(scope="package")
def broker() -> Iterator[RedisServer]:
    if RedisServer.binary() is None:
        pytest.skip("redis-server is not installed (scripts/bootstrap.sh installs it as root: "
                    "apt-get install -y redis-server)")
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="package")
def dist(pg_cluster: ClusterBase, moto_server: MotoServer) -> E2ESetup:
    """Three sample source databases (three targets), a catalog and a bucket."""
    for dbname in SOURCES.values():
        load_sample(pg_cluster, dbname, rows=500)
    setup = deployment_setup(pg_cluster, moto_server, SOURCES, "dist_catalog", METADATA_DB,
                             "dist-backups")
    setup.env.update({"BACKUP_TASK_RETRIES": "1", "BACKUP_TASK_RETRY_DELAY_SECONDS": "1",
                      "BACKUP_SERVER_TASKS_QUEUE": SERVER_QUEUE})
    return setup


@pytest.fixture(scope="package")
def celery(dist: E2ESetup, broker: RedisServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    """The deployment, started once for the package; its start time is printed."""
    url = metadata_url(dist.cluster, METADATA_DB)
    env = {**dist.env,
           "AIRFLOW__CELERY__BROKER_URL": broker.url,
           "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + url,
           "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
           "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
           "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL_S),
           # a busy api-server (2 shared cores) answers workers late rather than never
           "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
           # each DAG file parsed once at start: re-parsing all 13 every 30 s took the 2 shared
           # cores from the workers' tasks (nothing here changes a DAG file)
           "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
           # only the runs a test triggers: no scheduled daily_backup run once it is unpaused
           "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    began = time.monotonic()
    airflow = AirflowDeployment(
        tmp_path_factory.mktemp("airflow-celery"), url, env=env, executor="CeleryExecutor",
        start_timeout=300,
        components=(*COMPONENTS, worker(WORKERS[0], "default"),
                    worker(WORKERS[1], f"default,{SERVER_QUEUE}")))
    airflow.start()
    print(f"\nCeleryExecutor deployment healthy in {time.monotonic() - began:.1f} s")
    try:
        yield airflow
    finally:
        airflow.stop()
