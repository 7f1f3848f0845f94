"""Admin alerts through real receivers: Slack webhook (HTTP), SMTP, and the admin table."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from amprenta_backup.core.notifications import Alert, list_admin_notifications
from tests.airflow.conftest import WRONG_PASSWORD
from tests.support.airflow_env import REPO
from tests.support.receivers import WEBHOOK_TOKEN, SlackReceiver, SmtpReceiver, alert_receivers

WHEN = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


@pytest.fixture
def receivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SlackReceiver, SmtpReceiver]]:
    with alert_receivers(monkeypatch) as both:
        yield both


def _dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag


def test_a_failing_daily_backup_alerts_on_slack_email_and_the_admin_table(
    run_with_wrong_password: Any, backup_env: dict[str, Any],
    receivers: tuple[SlackReceiver, SmtpReceiver],
) -> None:
    slack, smtp = receivers
    secret = WRONG_PASSWORD
    dag_run = run_with_wrong_password(WHEN)
    assert str(dag_run.state) == "failed"
    (record,) = backup_env["catalog"].find()
    task_lines = ["DAG: daily_backup", "Task: backup[0]", "Target: pg_source",
                  f"Backup id: {record.backup_id}", "password authentication failed",
                  f"/dags/daily_backup/runs/{quote(dag_run.run_id)}/tasks/backup/mapped/0"]

    # Slack: one message from the failed task, one from the failed DAG run
    assert len(slack.posts) == 2 and {p for p, _ in slack.posts} == {"/" + WEBHOOK_TOKEN}
    (task_text,) = [t for t in slack.texts if "Task: backup[0]" in t and "task_failure" not in t]
    assert all(line in task_text for line in task_lines), task_text
    assert "Error: StepError: backup of 'pg_source' failed at step 'connect'" in task_text
    assert any("daily_backup: run failed (task_failure)" in t for t in slack.texts)

    # email: the same two, to the configured address
    messages = smtp.wait_for(2)
    subjects = sorted(str(m["Subject"]) for m in messages)
    assert subjects == ["[amprenta-backup critical] daily_backup: run failed (task_failure)",
                        "[amprenta-backup critical] daily_backup: task backup[0] failed for "
                        "pg_source"]
    assert smtp.recipients == [["ops@example.com"], ["ops@example.com"]]
    body = next(smtp.body(m) for m in messages if "task backup[0]" in str(m["Subject"]))
    assert all(line in body for line in task_lines), body

    # the admin table: two critical notifications
    rows = list_admin_notifications(backup_env["catalog"])
    assert sorted(r["title"] for r in rows) == ["daily_backup: run failed (task_failure)",
                                                "daily_backup: task backup[0] failed for "
                                                "pg_source"]
    assert {r["notification_type"] for r in rows} == {"critical"}
    assert all(line in next(r["message"] for r in rows if "task backup" in r["title"])
               for line in task_lines)

    everything = "".join(slack.texts) + "".join(smtp.body(m) + str(m) for m in messages) + \
        "".join(r["title"] + r["message"] for r in rows)
    assert secret not in everything and WEBHOOK_TOKEN not in everything


def test_with_notifications_off_a_failure_sends_nothing(
    run_dag: Any, backup_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    receivers: tuple[SlackReceiver, SmtpReceiver],
) -> None:
    slack, smtp = receivers
    monkeypatch.setenv("BACKUP_NOTIFICATION_ENABLED", "false")
    monkeypatch.setenv("BACKUP_TARGETS", "pg_nowhere")
    assert str(run_dag("daily_backup", logical_date=WHEN, run_after=WHEN).state) == "failed"
    assert slack.posts == [] and smtp.messages == []
    assert list_admin_notifications(backup_env["catalog"]) == []


def test_a_missed_deadline_alerts_through_the_triggerer_callback(
    run_dag: Any, backup_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    receivers: tuple[SlackReceiver, SmtpReceiver],
) -> None:
    """The scheduler's part (noticing the deadline passed) is done by hand with Airflow's own
    ``Deadline.handle_miss``; the queued ``CallbackTrigger`` then runs as the triggerer would."""
    from airflow.models.deadline import Deadline
    from airflow.sdk import DeadlineReference
    from airflow.sdk._shared.module_loading import import_string
    from airflow.utils.session import create_session

    slack, _smtp = receivers
    monkeypatch.setenv("BACKUP_DEADLINE_HOURS", "3")
    monkeypatch.setenv("BACKUP_TARGETS", "pg_nowhere")
    alert = _dagbag().dags["daily_backup"].deadline
    alert = alert[0] if isinstance(alert, list) else alert
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == timedelta(hours=3)
    dag_run = run_dag("daily_backup", logical_date=WHEN, run_after=WHEN)
    slack.posts.clear()

    with create_session() as session:
        deadline = Deadline(deadline_time=datetime.now(UTC) - timedelta(minutes=1),
                            callback=alert.callback, dagrun_id=dag_run.id,
                            deadline_alert_id=None, dag_id="daily_backup")
        session.add(deadline)
        session.flush()
        deadline.handle_miss(session)
        classpath, kwargs = deadline.callback.trigger.classpath, deadline.callback.trigger.kwargs

    async def run_trigger() -> list[Any]:
        return [event async for event in import_string(classpath)(**kwargs).run()]

    events = asyncio.run(run_trigger())
    assert events[-1].payload["state"] == "success", events[-1].payload
    (text,) = slack.texts
    assert "daily_backup: run not finished 3 h after it was queued" in text
    assert f"Run: {dag_run.run_id}" in text and "/dags/daily_backup/runs/" in text
    assert len(list_admin_notifications(backup_env["catalog"])) == 3  # 2 failures + deadline


def test_one_broken_channel_does_not_silence_the_others(
    backup_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    receivers: tuple[SlackReceiver, SmtpReceiver],
) -> None:
    from amprenta_backup.notifiers.alerts import send_alert

    _slack, smtp = receivers
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS",
                       '{"conn_type": "slackwebhook", "host": "http://127.0.0.1:9", '
                       '"password": "T0/B0/x"}')
    failed = send_alert(Alert(title="restore drill overdue", notification_type="warning",
                              error="no drill in 35 days", dag_id="monthly_restore_drill"))
    assert len(failed) == 1 and failed[0].startswith("SlackAlertNotifier")
    (message,) = smtp.wait_for(1)
    assert "restore drill overdue" in str(message["Subject"])
    (row,) = list_admin_notifications(backup_env["catalog"])
    assert row["notification_type"] == "warning" and "no drill in 35 days" in row["message"]


def test_every_dag_alerts_on_task_and_run_failure(
    airflow_db: None, receivers: tuple[SlackReceiver, SmtpReceiver],
) -> None:
    from amprenta_backup.notifiers.admin_table import AdminTableNotifier
    from amprenta_backup.notifiers.email_alert import EmailAlertNotifier
    from amprenta_backup.notifiers.slack_alert import SlackAlertNotifier

    expected = [SlackAlertNotifier, EmailAlertNotifier, AdminTableNotifier]
    bag = _dagbag()
    assert {"daily_backup", "weekly_cleanup", "daily_health"} <= set(bag.dags)
    for dag_id, dag in bag.dags.items():
        assert [type(c) for c in dag.on_failure_callback or []] == expected, dag_id
        for task in dag.tasks:
            callbacks = getattr(task, "partial_kwargs", {}).get("on_failure_callback") \
                if not hasattr(task, "on_failure_callback") else task.on_failure_callback
            assert [type(c) for c in callbacks or []] == expected, f"{dag_id}.{task.task_id}"
    assert bag.dags["daily_backup"].deadline is not None
