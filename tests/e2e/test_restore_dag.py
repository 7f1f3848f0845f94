"""The restore DAG in a real Airflow deployment, triggered through the REST API with conf."""

from __future__ import annotations

from collections.abc import Iterator
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
                            "restore": "success", "replay_plan": "success",
                            "approve_replay": "skipped", "replay": "skipped"}
    result = deployment.xcom("restore", run["dag_run_id"], "restore")
    assert result["performed"] is True
    assert result["plan"]["backup_id"] == latest_backup.backup_id
    assert result["row_counts_match"] is True
    assert_databases_equal(e2e.cluster, SOURCE_DB, e2e.cluster, target_db)


def test_replace_drops_nothing_until_approved_through_the_api(
    deployment: AirflowDeployment, e2e: E2ESetup, latest_backup: BackupRecord, target_db: str,
) -> None:
    """The approval is given through the REST API, as a person (or a runbook script) would
    (:meth:`AirflowDeployment.approve` says when it may be given)."""
    e2e.cluster.create_database(target_db)
    e2e.cluster.execute("CREATE TABLE stale AS SELECT generate_series(1, 3) AS n", target_db)
    run_id = deployment.trigger("restore", _request(target_db, mode="replace",
                                                    confirm=target_db))["dag_run_id"]
    # the approval task parks itself until a person answers; nothing is dropped meanwhile
    deployment.wait_task("restore", run_id, "approve_replace", "awaiting_input")
    assert deployment.states("restore", run_id)["restore"] is None
    assert e2e.cluster.query("SELECT count(*) FROM stale", target_db) == [(3,)]

    deployment.approve("restore", run_id, "approve_replace")
    run = deployment.wait("restore", run_id, timeout=150)
    assert run["state"] == "success", deployment.states("restore", run_id)
    assert deployment.xcom("restore", run_id, "restore")["plan"]["backup_id"] == \
        latest_backup.backup_id
    assert_databases_equal(e2e.cluster, SOURCE_DB, e2e.cluster, target_db)  # stale is gone


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
            f"writes:{TARGET}), e2e_load_orders (asset {asset}); pause them before "
            "approving**") in detail["body"]
    assert "1 DAG(s) read from it: e2e_unrelated" in detail["body"]
    plan = deployment.xcom("restore", run_id, "plan", key="plan")
    assert sorted(plan["pipelines"]["writers"]) == ["e2e_load_customers", "e2e_load_orders"]

    deployment.respond("restore", run_id, "approve_replace", ["Reject"])
    deployment.wait("restore", run_id, timeout=120)
    states = deployment.states("restore", run_id)
    # seen once on CI: the approval task itself failed after the Reject; its log says why
    assert states["restore"] == "skipped", (states, deployment.task_log(
        "restore", run_id, "approve_replace", try_number=1)[-4000:])
    assert e2e.cluster.query("SELECT count(*) FROM pg_class", SOURCE_DB) == before
