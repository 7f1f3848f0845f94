"""Admin alerts through real receivers: Slack webhook (HTTP), SMTP, and the admin table."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from amprenta_backup.core.notifications import Alert, list_admin_notifications
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.airflow.conftest import WRONG_PASSWORD, postgres_conn_json
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


def test_one_failure_sends_one_alert_per_channel_and_the_next_good_run_resolves_it(
    run_with_wrong_password: Any, run_dag: Any, backup_env: dict[str, Any],
    pg_cluster: ClusterBase, monkeypatch: pytest.MonkeyPatch,
    receivers: tuple[SlackReceiver, SmtpReceiver],
) -> None:
    slack, smtp = receivers
    secret = WRONG_PASSWORD
    dag_run = run_with_wrong_password(WHEN)
    assert str(dag_run.state) == "failed"
    (record,) = backup_env["catalog"].find()
    title = "daily_backup: task backup[0] failed for pg_source"
    task_lines = [f"[CRITICAL] {title}", "DAG: daily_backup", "Task: backup[0]",
                  f"Run: {dag_run.run_id}", "Target: pg_source", f"Backup id: {record.backup_id}",
                  "Outcome: the run fails: task backup[0] failed on try 1 of 1",
                  "Next: a 'resolved' message when a run of daily_backup succeeds"]
    link = f"/dags/daily_backup/runs/{quote(dag_run.run_id)}/tasks/backup/mapped/0"

    # Slack: exactly one message (the task's; the DAG-level callback of the same failure is
    # silent), naming the target, the backup, the error and the run's outcome
    assert [p for p, _ in slack.posts] == ["/" + WEBHOOK_TOKEN]
    (text,) = slack.texts
    lines = text.splitlines()
    assert [line for line in lines if not line.startswith(("Error: ", "Log: "))] == task_lines
    assert "Error: StepError: backup of 'pg_source' failed at step 'connect'" in text
    assert "password authentication failed" in text and link in text

    # email: the same one, to the configured address; the admin table: one critical row
    (message,) = smtp.wait_for(1)
    assert str(message["Subject"]) == f"[amprenta-backup critical] {title}"
    assert smtp.recipients == [["ops@example.com"]]
    assert all(line in html.unescape(smtp.body(message)) for line in task_lines)
    (row,) = list_admin_notifications(backup_env["catalog"])
    assert (row["title"], row["notification_type"]) == (title, "critical")
    everything = text + smtp.body(message) + str(message) + row["title"] + row["message"]
    assert secret not in everything and WEBHOOK_TOKEN not in everything

    # the next run succeeds: one "resolved" message per channel; the one after: nothing
    monkeypatch.setenv("AIRFLOW_CONN_PG_SOURCE", postgres_conn_json(pg_cluster, "af_source"))
    good = run_dag("daily_backup", logical_date=WHEN + timedelta(days=1),
                   run_after=WHEN + timedelta(days=1))
    assert str(good.state) == "success"
    resolved = f"daily_backup: resolved: run {good.run_id} succeeded"
    assert slack.texts[1].splitlines()[:3] == [f"[INFO] {resolved}", "DAG: daily_backup",
                                               f"Run: {good.run_id}"]
    assert f"Failed before: run {dag_run.run_id} ({title}), failing since " in slack.texts[1]
    assert str(smtp.wait_for(2)[1]["Subject"]) == f"[amprenta-backup info] {resolved}"
    assert list_admin_notifications(backup_env["catalog"])[0]["title"] == resolved
    again = run_dag("daily_backup", logical_date=WHEN + timedelta(days=2),
                    run_after=WHEN + timedelta(days=2))
    assert str(again.state) == "success" and len(slack.texts) == 2
    assert len(list_admin_notifications(backup_env["catalog"])) == 2


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
    assert len(list_admin_notifications(backup_env["catalog"])) == 2  # 1 failure + deadline


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


def test_every_dag_alerts_on_task_and_run_failure_and_on_recovery(
    airflow_db: None, receivers: tuple[SlackReceiver, SmtpReceiver],
) -> None:
    from amprenta_backup.notifiers.admin_table import AdminTableNotifier
    from amprenta_backup.notifiers.email_alert import EmailAlertNotifier
    from amprenta_backup.notifiers.run import RunFailureNotifier, RunResolvedNotifier
    from amprenta_backup.notifiers.slack_alert import SlackAlertNotifier

    expected = [SlackAlertNotifier, EmailAlertNotifier, AdminTableNotifier]

    def channels(callbacks: Any, kind: type) -> list[type]:
        (callback,) = callbacks
        assert isinstance(callback, kind)
        return [type(c) for c in callback.channels]

    bag = _dagbag()
    assert {"daily_backup", "weekly_cleanup", "daily_health"} <= set(bag.dags)
    for dag_id, dag in bag.dags.items():
        assert channels(dag.on_failure_callback, RunFailureNotifier) == expected, dag_id
        assert channels(dag.on_success_callback, RunResolvedNotifier) == expected, dag_id
        for task in dag.tasks:
            callbacks = getattr(task, "partial_kwargs", {}).get("on_failure_callback") \
                if not hasattr(task, "on_failure_callback") else task.on_failure_callback
            assert channels(callbacks, RunFailureNotifier) == expected, f"{dag_id}.{task.task_id}"
    assert bag.dags["daily_backup"].deadline is not None
