"""One alert per failure, and a "resolved" message when the DAG's next run succeeds.

Every task and every DAG gets :class:`RunFailureNotifier` as ``on_failure_callback``: a failed
task alerts (it knows the error, the target and the backup); the DAG-level callback that
follows for the same failure (reason ``task_failure``) stays silent, and alerts only when the
run failed for another reason (``timed_out``). A task that alerted itself before failing (the
health check) sets ``alert_sent``. The DAG's ``on_success_callback``,
:class:`RunResolvedNotifier`, sends "resolved" when the DAG's last alert was a failure; the
catalog's ``alert_state`` remembers that between runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.notifications import Alert, forget_failure, remember_failure
from amprenta_backup.notifiers.admin_table import alert_catalog
from amprenta_backup.notifiers.base import BackupAlertNotifier, alert_from_context, run_url

if TYPE_CHECKING:
    from airflow.sdk import Context

TASK_FAILURE = "task_failure"  # the reason of a DAG-level callback after a task failed


class _RunNotifier(BaseNotifier):
    """Sends through every channel in ``channels`` (a broken one does not stop the others).

    :param channels: the alert channels (``BACKUP_ALERT_CHANNELS``)
    """

    def __init__(self, channels: Sequence[BackupAlertNotifier]) -> None:
        super().__init__()
        self.channels = list(channels)

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Nothing to render: the message is built from the context, never templated."""

    def send(self, alert: Alert) -> None:
        from amprenta_backup.notifiers.alerts import send_alert

        for problem in send_alert(alert, self.channels):
            self.log.warning("alert channel failed: %s", problem)


class RunFailureNotifier(_RunNotifier):
    """The one alert of a failure (task-level and DAG-level ``on_failure_callback``)."""

    def notify(self, context: Context) -> None:
        if context.get("reason") == TASK_FAILURE:
            self.log.info("the failed task has sent the alert of this run")
            return
        alert = alert_from_context(context)
        if getattr(context.get("task"), "alert_sent", False):
            self.log.info("the task sent its own alert before it failed")
        else:
            self.send(alert)
        if alert.dag_id:
            try:
                remember_failure(alert_catalog(), alert.dag_id, alert.run_id, alert.title)
            except BackupError as exc:
                self.log.warning("no 'resolved' message will follow: %s", exc)


class RunResolvedNotifier(_RunNotifier):
    """``on_success_callback`` of a DAG: "resolved" after a failure, else nothing."""

    def notify(self, context: Context) -> None:
        dag: Any = context.get("dag")
        ti: Any = context.get("ti")
        dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None)
        run_id = getattr(ti, "run_id", None) or context.get("run_id")
        if not dag_id:
            return
        try:
            failed = forget_failure(alert_catalog(), dag_id)
        except BackupError as exc:
            self.log.warning("cannot tell whether a failure was resolved: %s", exc)
            return
        if failed is None:
            return
        self.send(Alert(
            title=f"{dag_id}: resolved: run {run_id} succeeded", notification_type="info",
            error="", dag_id=dag_id, run_id=run_id, log_url=run_url(dag_id, run_id),
            details=(f"Failed before: run {failed['run_id']} ({failed['title']}), failing "
                     f"since {failed['failed_at']:%Y-%m-%d %H:%M} UTC",)))
