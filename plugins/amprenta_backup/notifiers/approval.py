"""ApprovalWaitingNotifier: tell the alert channels that a restore waits for a person."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from amprenta_backup.core.notifications import Alert
from amprenta_backup.notifiers.base import ui_base

if TYPE_CHECKING:
    from airflow.sdk import Context


def approval_link(context: Context) -> str | None:
    """The page where the approval is answered (Airflow's required-actions form)."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    try:
        return HITLOperator.generate_link_to_ui_from_context(context=context,
                                                             base_url=ui_base())
    except (ValueError, KeyError, AttributeError):  # not an approval task's context
        return None


class ApprovalWaitingNotifier(BaseNotifier):
    """Sends one alert through ``BACKUP_ALERT_CHANNELS`` when an approval starts waiting: the
    DAG run, the question, the backup, where it writes and the link to answer it.

    :param backup_id: the backup to be restored (templated: the plan's resolved id)
    :param target: what would be written (templated, e.g. ``database 'x' on user@host:5432``)
    """

    template_fields: Sequence[str] = ("backup_id", "target")

    def __init__(self, *, backup_id: str, target: str) -> None:
        super().__init__()
        self.backup_id = backup_id
        self.target = target

    def notify(self, context: Context) -> None:
        from amprenta_backup.notifiers.alerts import send_alert

        ti: Any = context["ti"]
        task: Any = context["task"]
        link = approval_link(context)
        users = ", ".join(u["id"] for u in getattr(task, "assigned_users", None) or [])
        timeout = getattr(task, "response_timeout", None)
        details = [f"Answer: {link or 'Browse > Required Actions in the Airflow UI'}",
                   f"Who may answer: {users or 'any user allowed to run the DAG'}"]
        if timeout:
            details.append(f"Unanswered after {timeout.total_seconds() / 3600:g} h the "
                           "approval times out and nothing is written")
        alert = Alert(title=f"{ti.dag_id}: approval waiting: {task.subject}",
                      notification_type="warning", error="", dag_id=ti.dag_id,
                      task_id=ti.task_id, run_id=ti.run_id, target=self.target or None,
                      backup_id=self.backup_id or None, details=tuple(details))
        for problem in send_alert(alert):
            self.log.warning("approval notice not sent: %s", problem)
