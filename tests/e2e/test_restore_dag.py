"""The restore DAG in a real Airflow deployment, triggered through the REST API with conf."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core.models import RESTORABLE, BackupRecord
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.e2e.conftest import SOURCE_DB, TARGET, E2ESetup
from tests.support.airflow_deployment import AirflowDeployment
from tests.support.airflow_env import REPO

pytestmark = [
    pytest.mark.skipif(not (REPO / "dags" / "restore.py").exists(),
                       reason="dags/restore.py (issue 3) is not in the tree yet; these tests "
                              "run as soon as it is"),
]


@pytest.fixture
def latest_backup(deployment: AirflowDeployment, e2e: E2ESetup,
                  daily_backup_run: dict[str, Any]) -> BackupRecord:
    """The newest restorable backup of the target, once no daily_backup run is active."""
    assert daily_backup_run["state"] == "success", daily_backup_run["tasks"]
    deployment.wait_idle("daily_backup")  # the scheduler may have started its own run too
    return e2e.catalog.find(target=TARGET, statuses=RESTORABLE, limit=1)[0]


@pytest.fixture
def target_db(e2e: E2ESetup, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database name for the test to restore into, dropped before and after."""
    name = f"e2e_{request.node.name[5:30]}"
    e2e.cluster.drop_database(name)
    yield name
    e2e.cluster.drop_database(name)


def _request(target_db: str, **more: Any) -> dict[str, Any]:
    return {"backup_id": "latest", "target": TARGET, "target_conn_id": TARGET,
            "target_database": target_db, **more}


def _runs(deployment: AirflowDeployment) -> list[str]:
    answer = deployment.api("GET", "/api/v2/dags/restore/dagRuns", params={"limit": 100})
    return [run["dag_run_id"] for run in answer["dag_runs"]]


def test_new_database_restores_the_latest_backup(
    deployment: AirflowDeployment, e2e: E2ESetup, latest_backup: BackupRecord, target_db: str,
) -> None:
    run = deployment.run_dag("restore", _request(target_db, mode="new_database"), timeout=150)
    assert run["state"] == "success", run["tasks"]
    assert run["tasks"] == {"plan": "success", "approve_replace": "skipped",
                            "pause_writers": "skipped", "restore": "success",
                            "resume_writers": "skipped", "replay_plan": "success",
                            "approve_replay": "skipped", "replay": "skipped"}
    result = deployment.xcom("restore", run["dag_run_id"], "restore")
    assert result["performed"] is True
    assert result["plan"]["backup_id"] == latest_backup.backup_id
    assert result["row_counts_match"] is True
    assert_databases_equal(e2e.cluster, SOURCE_DB, e2e.cluster, target_db)


def test_an_invalid_mode_is_rejected_by_the_api_and_nothing_is_created(
    deployment: AirflowDeployment, e2e: E2ESetup, target_db: str,
) -> None:
    deployment.wait_for_dag("restore")
    before = _runs(deployment)
    answer = deployment.post_run("restore", _request(target_db, mode="destroy"))
    assert answer.status_code == 400, answer.text
    detail = str(answer.json()["detail"])
    assert "Invalid input for param mode: 'destroy' is not one of" in detail
    assert _runs(deployment) == before
    assert not e2e.cluster.database_exists(target_db)


def test_the_approval_names_exactly_the_dags_that_write_to_the_database(
    deployment: AirflowDeployment, e2e: E2ESetup, latest_backup: BackupRecord,
) -> None:
    """pipeline_dags/ holds two producers of the source database (an Asset outlet naming it,
    a ``writes:pg_source`` tag) and an unrelated DAG (an Asset of another database, a
    ``reads:`` tag); the plan task reads them from the REST API. Rejected: nothing changes."""
    for dag_id in ("e2e_load_orders", "e2e_load_customers", "e2e_unrelated"):
        deployment.wait_for_dag(dag_id)
    before = e2e.cluster.query("SELECT count(*) FROM pg_class", SOURCE_DB)
    run_id = deployment.trigger("restore", _request(SOURCE_DB, mode="replace",
                                                    confirm=SOURCE_DB))["dag_run_id"]
    deployment.wait_task("restore", run_id, "approve_replace", "awaiting_input")
    detail = deployment.api("GET", f"/api/v2/dags/restore/dagRuns/{run_id}/taskInstances/"
                                   "approve_replace/-1/hitlDetails")
    asset = deployment.env["E2E_SOURCE_ASSET"]
    assert (f"**2 DAGs write to database '{SOURCE_DB}': e2e_load_customers (tag "
            f"writes:{TARGET}), e2e_load_orders (asset {asset}); paused during the restore "
            "and resumed after it, also if it fails**") in detail["body"]
    assert "1 DAG(s) read from it: e2e_unrelated" in detail["body"]
    plan = deployment.xcom("restore", run_id, "plan", key="plan")
    assert sorted(plan["pipelines"]["writers"]) == ["e2e_load_customers", "e2e_load_orders"]

    deployment.answer("restore", run_id, "approve_replace", ["Reject"])
    deployment.wait("restore", run_id, timeout=120)
    states = deployment.states("restore", run_id)
    # an answer given too soon fails the approval task (Airflow 3.3.2's race, see answer())
    assert states["restore"] == "skipped", (states, deployment.task_log(
        "restore", run_id, "approve_replace", try_number=1)[-4000:])
    assert e2e.cluster.query("SELECT count(*) FROM pg_class", SOURCE_DB) == before


WRITERS = ("e2e_load_customers", "e2e_load_orders")
PIPELINE_DAGS = (*WRITERS, "e2e_unrelated")
RESTORE_LOCK = "amprenta-restore:" + SOURCE_DB  # core/restore/server.py, TargetServer.lock


def _paused(deployment: AirflowDeployment) -> dict[str, bool]:
    return {d: deployment.api("GET", f"/api/v2/dags/{d}")["is_paused"] for d in PIPELINE_DAGS}


def _set_paused(deployment: AirflowDeployment, states: dict[str, bool]) -> None:
    for dag_id, paused in states.items():
        deployment.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})


@pytest.fixture
def pipelines(deployment: AirflowDeployment) -> Iterator[dict[str, bool]]:
    """The pipeline DAGs parsed; their pause states are put back afterwards."""
    for dag_id in PIPELINE_DAGS:
        deployment.wait_for_dag(dag_id)
    before = _paused(deployment)
    yield before
    _set_paused(deployment, before)


def _replace_source(deployment: AirflowDeployment) -> str:
    """Trigger a replace restore of the source database and approve it; return the run id."""
    run_id = deployment.trigger("restore", _request(SOURCE_DB, mode="replace",
                                                    confirm=SOURCE_DB))["dag_run_id"]
    deployment.approve("restore", run_id, "approve_replace")
    return run_id


def _body(deployment: AirflowDeployment, run_id: str) -> str:
    return str(deployment.api("GET", f"/api/v2/dags/restore/dagRuns/{run_id}/taskInstances/"
                                     "approve_replace/-1/hitlDetails")["body"])


def test_a_replace_pauses_the_writers_waits_for_their_running_task_then_resumes_them(
    deployment: AirflowDeployment, e2e: E2ESetup, latest_backup: BackupRecord,
    pipelines: dict[str, bool], tmp_path: Path,
) -> None:
    """e2e_load_orders' task runs (until the test opens its gate) when the restore is
    planned: the approval names it; the restore pauses both writers, does not start while
    it runs, and resumes exactly them; e2e_unrelated is never paused."""
    _set_paused(deployment, dict.fromkeys(PIPELINE_DAGS, False))
    gate = tmp_path / "gate"
    producer = deployment.trigger("e2e_load_orders", {"gate": str(gate)})["dag_run_id"]
    deployment.wait_task("e2e_load_orders", producer, "load", "running")
    running = f"e2e_load_orders.load (running, run {producer})"

    run_id = _replace_source(deployment)
    body = _body(deployment, run_id)
    assert "**pausing e2e_load_customers, e2e_load_orders before the restore, resuming " \
           "them when it ends**" in body
    assert f"**running now, the restore waits up to 600 s for: {running}**" in body
    deployment.wait_task("restore", run_id, "pause_writers", "running")
    deployment._poll(lambda: True if all(_paused(deployment)[d] for d in WRITERS) else None,
                     60, 0.5, lambda: f"writers not paused: {_paused(deployment)}")
    assert _paused(deployment)["e2e_unrelated"] is False
    assert deployment.states("restore", run_id)["restore"] is None  # waits for the producer
    gate.touch()

    run = deployment.wait("restore", run_id, timeout=150)
    assert run["state"] == "success", deployment.states("restore", run_id)
    quiesced = deployment.xcom("restore", run_id, "pause_writers")
    assert quiesced["paused"] == list(WRITERS) and quiesced["left_paused"] == []
    assert quiesced["waited_for"] == [running]
    assert deployment.xcom("restore", run_id, "resume_writers")["resumed"] == list(WRITERS)
    assert _paused(deployment) == dict.fromkeys(PIPELINE_DAGS, False)
    load = deployment.api("GET", f"/api/v2/dags/e2e_load_orders/dagRuns/{producer}/"
                                 "taskInstances/load")
    restore = deployment.api("GET", f"/api/v2/dags/restore/dagRuns/{run_id}/"
                                    "taskInstances/restore")
    assert load["state"] == "success" and load["end_date"] < restore["start_date"]
    assert deployment.xcom("restore", run_id, "restore")["row_counts_match"] is True


def test_a_failed_replace_resumes_the_writers_it_paused_and_not_one_paused_by_hand(
    deployment: AirflowDeployment, e2e: E2ESetup, latest_backup: BackupRecord,
    pipelines: dict[str, bool],
) -> None:
    """A session holding the restore's lock on the source database makes the restore fail
    (a real refusal, nothing written); e2e_load_customers was paused by a person."""
    _set_paused(deployment, {"e2e_load_customers": True, "e2e_load_orders": False,
                             "e2e_unrelated": False})
    before = e2e.cluster.query("SELECT count(*) FROM pg_class", SOURCE_DB)
    with e2e.cluster.connect() as session:
        session.execute("SELECT pg_advisory_lock(hashtext(%s))", (RESTORE_LOCK,))
        run_id = _replace_source(deployment)
        assert "**already paused, left paused: e2e_load_customers**" in \
            _body(deployment, run_id)
        run = deployment.wait("restore", run_id, timeout=150)
    assert run["state"] == "failed"
    assert deployment.states("restore", run_id) == {
        "plan": "success", "approve_replace": "success", "pause_writers": "success",
        "restore": "failed", "resume_writers": "success", "replay_plan": "upstream_failed",
        "approve_replay": "upstream_failed", "replay": "upstream_failed"}
    assert deployment.xcom("restore", run_id, "pause_writers")["paused"] == ["e2e_load_orders"]
    assert _paused(deployment) == {"e2e_load_customers": True, "e2e_load_orders": False,
                                   "e2e_unrelated": False}
    assert e2e.cluster.query("SELECT count(*) FROM pg_class", SOURCE_DB) == before
