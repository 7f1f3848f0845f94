"""Admin alert channels from configuration: failure callbacks, the deadline alert, health alerts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import (  # type: ignore[attr-defined]  # missing from the sdk's stub
    AsyncCallback,
    BaseNotifier,
    DeadlineAlert,
    DeadlineReference,
)

from amprenta_backup.core.notifications import Alert
from amprenta_backup.core.settings import AlertSettings
from amprenta_backup.notifiers.admin_table import AdminTableNotifier
from amprenta_backup.notifiers.base import BackupAlertNotifier, run_url
from amprenta_backup.notifiers.email_alert import EmailAlertNotifier
from amprenta_backup.notifiers.run import RunFailureNotifier, RunResolvedNotifier
from amprenta_backup.notifiers.slack_alert import SlackAlertNotifier

log = logging.getLogger(__name__)


def alert_channels(settings: AlertSettings | None = None) -> list[BackupAlertNotifier]:
    """One notifier per channel in ``BACKUP_ALERT_CHANNELS``; none when notifications are off."""
    settings = settings or AlertSettings.from_env()
    if not settings.enabled:
        return []
    notifiers: list[BackupAlertNotifier] = []
    for channel in settings.channels:
        if channel == "slack":
            notifiers.append(SlackAlertNotifier(slack_webhook_conn_id=settings.slack_conn_id))
        elif channel == "email":
            notifiers.append(EmailAlertNotifier(to=list(settings.email_to),
                                                smtp_conn_id=settings.smtp_conn_id,
                                                from_email=settings.email_from))
        else:
            notifiers.append(AdminTableNotifier())
    return notifiers


def failure_callbacks(settings: AlertSettings | None = None) -> list[BaseNotifier]:
    """The ``on_failure_callback`` of every task and DAG: one alert per failure through every
    channel; empty when notifications are off."""
    channels = alert_channels(settings)
    return [RunFailureNotifier(channels)] if channels else []


def success_callbacks(settings: AlertSettings | None = None) -> list[BaseNotifier]:
    """The DAG ``on_success_callback``: "resolved" when the run follows a failure alert."""
    channels = alert_channels(settings)
    return [RunResolvedNotifier(channels)] if channels else []


def send_alert(alert: Alert, channels: Sequence[BackupAlertNotifier] | None = None) -> list[str]:
    """Send ``alert`` through every channel; a channel that fails does not stop the others.

    Returns one line per channel that failed.
    """
    failed: list[str] = []
    for channel in alert_channels() if channels is None else channels:
        try:
            channel.send_alert(alert)
        except Exception as exc:  # one broken channel must not silence the rest
            log.exception("alert channel %s failed", type(channel).__name__)
            failed.append(f"{type(channel).__name__}: {type(exc).__name__}: {exc}")
    return failed


async def deadline_missed(context: dict[str, Any] | None = None, hours: float = 0.0) -> None:
    """Deadline Alert callback (runs in the triggerer): the run has not finished in time."""
    dag_run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    dag_id, run_id = dag_run.get("dag_id"), dag_run.get("dag_run_id")
    alert = Alert(
        title=f"{dag_id}: run not finished {hours:g} h after it was queued",
        notification_type="critical", dag_id=dag_id, run_id=run_id,
        error=(f"deadline {deadline.get('deadline_time')} passed while the run was "
               f"{dag_run.get('state')} (queued at {dag_run.get('queued_at')})"),
        log_url=run_url(dag_id, run_id),
    )
    await asyncio.to_thread(send_alert, alert)


def deadline_alert(settings: AlertSettings | None = None) -> DeadlineAlert | None:
    """Alert when a run has not finished ``BACKUP_DEADLINE_HOURS`` after it was queued."""
    settings = settings or AlertSettings.from_env()
    if not settings.enabled or not settings.channels or not settings.deadline_hours:
        return None
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT,
                         interval=timedelta(hours=settings.deadline_hours),
                         callback=AsyncCallback(deadline_missed,
                                                kwargs={"hours": settings.deadline_hours}))
