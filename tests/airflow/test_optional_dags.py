"""DAGs that need setup beyond BACKUP_TARGETS: paused at first sight, skipping when unset, and
their server tasks on the queue of the workers that have the PostgreSQL server tools."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from amprenta_backup.core.models import Status
from tests.support.airflow_env import REPO

WHEN = datetime(2026, 11, 22, 0, 30, tzinfo=UTC)
OPTIONAL = {"weekly_base_backup", "pitr_drill", "dr_drill"}
SERVER_TASKS = {"pitr_restore", "pitr_drill", "dr_drill"}


def _bag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag


def test_optional_dags_are_paused_upon_creation_the_others_follow_the_deployment(
        airflow_db: None) -> None:
    dags = _bag().dags
    paused = {dag_id for dag_id, dag in dags.items() if dag.is_paused_upon_creation}
    assert paused == OPTIONAL
    # the daily work is never held back: Airflow's dags_are_paused_at_creation decides
    assert dags["daily_backup"].is_paused_upon_creation is None


def test_server_tasks_go_to_the_configured_queue_and_nothing_else_does(
        airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_SERVER_TASKS_QUEUE", "pg-server")
    queues = {dag_id: {task.queue for task in dag.tasks} for dag_id, dag in _bag().dags.items()}
    assert {dag_id for dag_id, used in queues.items() if used == {"pg-server"}} == SERVER_TASKS
    assert all(used == {"default"} for dag_id, used in queues.items()
               if dag_id not in SERVER_TASKS)
    monkeypatch.delenv("BACKUP_SERVER_TASKS_QUEUE")
    assert {task.queue for task in _bag().dags["pitr_drill"].tasks} == {"default"}


def test_retry_delay_comes_from_the_setting(airflow_db: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_TASK_RETRY_DELAY_SECONDS", "7")
    task = _bag().dags["daily_backup"].get_task("backup")
    assert task.retry_delay.total_seconds() == 7 and task.retry_exponential_backoff


@pytest.mark.parametrize("dag_id", ["weekly_base_backup", "pitr_drill"])
def test_pitr_dags_skip_cleanly_without_pitr_settings(
        run_dag: Any, backup_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        dag_id: str) -> None:
    monkeypatch.delenv("BACKUP_PITR_CONN_ID", raising=False)
    dag_run = run_dag(dag_id, logical_date=WHEN, run_after=WHEN)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states
    assert set(states.values()) == {"skipped"}, states
    first = dag_run.get_task_instance("base_backup" if dag_id == "weekly_base_backup"
                                      else "mark_source")
    assert first.state == "skipped"
    # nothing was started or recorded
    assert [r for r in backup_env["catalog"].find() if r.status == Status.RUNNING] == []
