"""daily_backup and restore on the CeleryExecutor: mapped backups spread over two workers, one
worker SIGKILLed mid-backup and its task retried on the other, a restore approved through the
REST API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from amprenta_backup.core.models import Status
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.distributed.conftest import HEARTBEAT_TIMEOUT_S, SOURCES, WORKERS
from tests.e2e.conftest import E2ESetup
from tests.integration.conftest import conninfo
from tests.support.airflow_deployment import AirflowDeployment

LOCKED = 2  # backup[2] is pg_c: its dump waits on a lock until its worker has been killed
LOCKED_DB = SOURCES["pg_c"]


def tries(airflow: AirflowDeployment, run_id: str, index: int) -> list[dict[str, Any]]:
    """Every try of ``backup[index]``, oldest first."""
    path = f"{airflow._run_path('daily_backup', run_id)}/taskInstances/backup/{index}/tries"
    answer = airflow.api("GET", path)
    return sorted(answer["task_instances"], key=lambda t: t["try_number"])


def _waiting(dist: E2ESetup) -> set[str]:
    """The databases in which a session waits on a lock (a dump held by our LOCK TABLE)."""
    rows = dist.cluster.query("SELECT DISTINCT datname FROM pg_stat_activity WHERE "
                              "wait_event_type = 'Lock' AND datname = ANY(%s)", "postgres",
                              (list(SOURCES.values()),))
    return {row[0] for row in rows}


def _lock(dist: E2ESetup, dbname: str) -> psycopg.Connection[Any]:
    holder = psycopg.connect(**conninfo(dist.cluster, dbname).connect_kwargs())
    holder.execute("LOCK TABLE app.orders IN ACCESS EXCLUSIVE MODE")
    return holder


def _release(holder: psycopg.Connection[Any]) -> None:
    if not holder.closed:
        holder.rollback()
        holder.close()


@pytest.fixture(scope="module")
def killed_run(celery: AirflowDeployment, dist: E2ESetup) -> Iterator[dict[str, Any]]:
    """A daily_backup run of the three targets. Every target's table is locked until two
    dumps wait at once: each worker runs one task at a time, so those two are on different
    workers (the backups of 500 rows end in about a second: unheld, one worker took all three
    in a run). Then only pg_c stays held; its worker is SIGKILLed (with every process below
    it) while the record is RUNNING, then its lock is released."""
    holders = {dbname: _lock(dist, dbname) for dbname in SOURCES.values()}
    try:
        celery.wait_for_dag("daily_backup")
        run_id = celery.trigger("daily_backup")["dag_run_id"]
        celery._poll(lambda: True if len(_waiting(dist)) >= 2 else None, 120, 0.5,
                     lambda: f"not two dumps wait on the locks at once ({_waiting(dist)}; "
                             f"tasks {celery.states('daily_backup', run_id)})")
        for dbname, holder in holders.items():
            if dbname != LOCKED_DB:
                _release(holder)
        celery._poll(lambda: True if LOCKED_DB in _waiting(dist) else None, 120, 0.5,
                     lambda: f"no dump of {LOCKED_DB} waits on the lock "
                             f"(tasks {celery.states('daily_backup', run_id)})")
        first = tries(celery, run_id, LOCKED)[-1]
        running = [r for r in dist.catalog.find(target="pg_c") if r.run.run_id == run_id]
        killed_at = time.monotonic()
        below = celery.kill(first["hostname"])
    finally:
        for holder in holders.values():
            _release(holder)
    finished = celery.wait("daily_backup", run_id, timeout=HEARTBEAT_TIMEOUT_S + 150)
    yield {"run": finished, "victim": first, "running_before_kill": running,
           "killed_processes": below, "recovered_s": time.monotonic() - killed_at}


def test_mapped_backups_spread_over_both_workers(celery: AirflowDeployment,
                                                 killed_run: dict[str, Any]) -> None:
    run_id = killed_run["run"]["dag_run_id"]
    assert killed_run["run"]["state"] == "success", celery.states("daily_backup", run_id)
    per_target = {i: tries(celery, run_id, i) for i in range(len(SOURCES))}
    assert all(t[-1]["state"] == "success" for t in per_target.values()), per_target
    # the first tries, before any kill: two dumps were held at once, one on each worker
    first = {target: per_target[i][0]["hostname"] for i, target in enumerate(SOURCES)}
    assert set(first.values()) == set(WORKERS), per_target
    print(f"\nfirst tries: {first}; the held pg_c retried on "
          f"{per_target[LOCKED][-1]['hostname']}")


def test_a_worker_killed_mid_backup_leaves_one_completed_backup(
        celery: AirflowDeployment, dist: E2ESetup, killed_run: dict[str, Any]) -> None:
    run_id = killed_run["run"]["dag_run_id"]
    victim = killed_run["victim"]
    assert victim["state"] == "running" and victim["try_number"] == 1
    assert killed_run["killed_processes"], "the worker had no task process to kill"
    (before,) = killed_run["running_before_kill"]
    assert before.status == Status.RUNNING  # the kill landed mid-backup
    retried = tries(celery, run_id, LOCKED)
    assert [t["try_number"] for t in retried] == [1, 2]
    assert retried[0]["state"] == "failed" and retried[1]["state"] == "success"
    (other,) = set(WORKERS) - {victim["hostname"]}
    assert retried[1]["hostname"] == other
    records = [r for r in dist.catalog.find(target="pg_c") if r.run.run_id == run_id]
    assert [(r.backup_id, r.status) for r in records] == [(before.backup_id, Status.COMPLETED)]
    assert [r for r in dist.catalog.find() if r.status == Status.RUNNING] == []
    print(f"\nworker killed -> retry succeeded on {other} in "
          f"{killed_run['recovered_s']:.1f} s (heartbeat timeout {HEARTBEAT_TIMEOUT_S} s)")


def test_restore_through_the_api_is_approved_there_and_runs_on_a_live_worker(
        celery: AirflowDeployment, dist: E2ESetup, killed_run: dict[str, Any]) -> None:
    target_db = "dist_restored"
    dist.cluster.drop_database(target_db)
    dist.cluster.create_database(target_db)
    dist.cluster.execute("CREATE TABLE stale AS SELECT 1 AS n", target_db)
    try:
        conf = {"backup_id": "latest", "target": "pg_c", "target_conn_id": "pg_c",
                "target_database": target_db, "mode": "replace", "confirm": target_db}
        run_id = celery.trigger("restore", conf)["dag_run_id"]
        celery.approve("restore", run_id, "approve_replace")
        run = celery.wait("restore", run_id, timeout=150)
        assert run["state"] == "success", celery.states("restore", run_id)
        backup = [r for r in dist.catalog.find(target="pg_c")
                  if r.run.run_id == killed_run["run"]["dag_run_id"]][0]
        assert celery.xcom("restore", run_id, "restore")["plan"]["backup_id"] == \
            backup.backup_id
        assert_databases_equal(dist.cluster, LOCKED_DB, dist.cluster, target_db)
    finally:
        dist.cluster.drop_database(target_db)
