"""Replay plan in a real deployment: a replace restore of an older backup drops nothing until
it is approved through the REST API, then replaces the database with the backup's content,
lists exactly the producer runs made after it, and the approved replay task re-runs them:
their rows come back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from amprenta_backup.core.models import Manifest
from amprenta_backup.core.restore.replay import PITR_DRILL
from amprenta_backup.core.restore.replaybook import ReplayBook, plan_id
from amprenta_backup.hooks.replay import make_replay_plan, target_writers
from tests.e2e.conftest import REPLAY_DB, E2ESetup
from tests.integration.conftest import conninfo
from tests.support.airflow_deployment import AirflowDeployment
from tests.support.backups import make_backup

PRODUCER = "e2e_load_events"


@pytest.fixture
def replay_db(e2e: E2ESetup) -> Iterator[str]:
    """The producer's database with its empty ``events`` table, dropped afterwards."""
    e2e.cluster.drop_database(REPLAY_DB)
    e2e.cluster.create_database(REPLAY_DB)
    e2e.cluster.execute("CREATE TABLE events (run_id text PRIMARY KEY)", REPLAY_DB)
    yield REPLAY_DB
    e2e.cluster.drop_database(REPLAY_DB)


def _produce(deployment: AirflowDeployment, count: int) -> list[str]:
    """``count`` producer runs at once, followed to success; their run ids."""
    runs = [deployment.trigger(PRODUCER)["dag_run_id"] for _ in range(count)]
    for run_id in runs:
        assert deployment.wait(PRODUCER, run_id, timeout=120)["state"] == "success"
    return runs


def _rows(e2e: E2ESetup) -> set[str]:
    return {row[0] for row in e2e.cluster.query("SELECT run_id FROM events", REPLAY_DB)}


def test_the_runs_after_the_backup_are_listed_and_replayed_after_approval(
    deployment: AirflowDeployment, e2e: E2ESetup, replay_db: str,
) -> None:
    deployment.wait_for_dag(PRODUCER)
    before = _produce(deployment, 1)
    backup: Manifest = make_backup(e2e.storage, e2e.catalog, conninfo(e2e.cluster, replay_db),
                                   target="pg_replay")  # the point T: its snapshot
    after = _produce(deployment, 2)
    assert _rows(e2e) == {*before, *after}
    e2e.cluster.execute("CREATE TABLE stale AS SELECT generate_series(1, 3) AS n", replay_db)

    run_id = deployment.trigger("restore", {
        "backup_id": backup.backup_id, "target_conn_id": "pg_replay",
        "target_database": replay_db, "mode": "replace", "confirm": replay_db,
        "replay": True})["dag_run_id"]
    # the approval task parks itself until a person answers; nothing is dropped meanwhile
    deployment.wait_task("restore", run_id, "approve_replace", "awaiting_input")
    assert deployment.states("restore", run_id)["restore"] is None
    assert e2e.cluster.query("SELECT count(*) FROM stale", replay_db) == [(3,)]
    assert _rows(e2e) == {*before, *after}
    deployment.approve("restore", run_id, "approve_replace")
    replace = deployment.api("GET", f"/api/v2/dags/restore/dagRuns/{run_id}/taskInstances/"
                                    "approve_replace/-1/hitlDetails")
    assert "**2 runs to redo (1 of 1 writer DAG) since " in replace["body"]  # before approving
    deployment.wait_task("restore", run_id, "approve_replay", "awaiting_input", timeout=150)
    assert _rows(e2e) == set(before)  # the restore took the two later runs' rows away
    assert e2e.cluster.query("SELECT to_regclass('stale')", replay_db) == [(None,)]

    plan = deployment.xcom("restore", run_id, "replay_plan", key="replay")
    assert sorted(r["run_id"] for r in plan["runs"]) == sorted(after)
    assert plan["headline"].startswith("2 runs to redo (1 of 1 writer DAG) since ")
    detail = deployment.api("GET", f"/api/v2/dags/restore/dagRuns/{run_id}/taskInstances/"
                                   "approve_replay/-1/hitlDetails")
    assert detail["subject"] == f"Re-run 2 DAG run(s) that wrote to {replay_db} after the backup?"
    assert f"**{plan['headline']}**" in detail["body"]
    assert all(f"{PRODUCER} {r}" in detail["body"] for r in after)

    deployment.approve("restore", run_id, "approve_replay")
    run = deployment.wait("restore", run_id, timeout=120)
    assert run["state"] == "success", deployment.states("restore", run_id)
    cleared = deployment.xcom("restore", run_id, "replay")["cleared"]
    assert sorted(c["run_id"] for c in cleared) == sorted(after)
    for producer_run in after:  # cleared: queued again, then re-run by the scheduler
        assert deployment.wait(PRODUCER, producer_run, timeout=120)["state"] == "success"
        assert deployment.task_instances(PRODUCER, producer_run)[0]["try_number"] == 2
    assert deployment.task_instances(PRODUCER, before[0])[0]["try_number"] == 1
    assert _rows(e2e) == {*before, *after}  # the rows the restore took away are back

    row = ReplayBook(e2e.catalog).get(plan_id("restore", run_id))
    assert row is not None and row["run_count"] == 2 and row["replayed_at"] is not None
    assert row["point"] == backup.started_at
    replayed = row["replayed"] if isinstance(row["replayed"], list) else json.loads(
        row["replayed"])
    assert sorted(r["run_id"] for r in replayed) == sorted(after)


def test_a_pitr_plan_to_t_reads_the_writers_and_their_runs_from_the_deployment(
    deployment: AirflowDeployment, e2e: E2ESetup, replay_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the PITR DAGs' replay_plan does after a restore to T (their DAG wiring is tested
    by tests/airflow/test_pitr_dags.py), here against the real api-server: the writers of the
    database by their tag, and exactly the producer runs after T."""
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", deployment.env["AIRFLOW_CONN_AIRFLOW_API"])
    monkeypatch.setenv("BACKUP_AIRFLOW_API_CONN_ID", "airflow_api")
    conn = conninfo(e2e.cluster, replay_db)
    writers = target_writers(("pg_replay", f"pg_replay.{replay_db}"), conn)
    assert writers == [PRODUCER]
    first = _produce(deployment, 1)
    t = e2e.catalog.now()
    later = _produce(deployment, 1)
    plan = make_replay_plan(PITR_DRILL, "pg_replay", replay_db, t, "PITR target time", writers)
    assert [lost.run.run_id for lost in plan.runs] == later
    assert first[0] not in {lost.run.run_id for lost in plan.runs}
    assert plan.headline().startswith("1 run to redo (1 of 1 writer DAG) since ")
