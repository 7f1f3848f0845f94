"""BackupAlertNotifier: build one secret-free alert from a callback context and send it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.notifications import Alert, redact
from amprenta_backup.core.settings import BackupTarget
from amprenta_backup.hooks.context import backup_id_for, run_context

if TYPE_CHECKING:
    from airflow.sdk import Context


def _target_and_backup(task: Any, context: Context) -> tuple[str | None, str | None]:
    """The target a task worked on and its backup id, when the task says (a task whose
    ``backup_id_from_run`` is true names its backup by run and target, as backups do)."""
    target = getattr(task, "target", None)
    backup_id = getattr(task, "backup_id", None)
    if not isinstance(target, str) or "{{" in target:
        return None, backup_id if isinstance(backup_id, str) else None
    try:
        name = BackupTarget.parse(target).name
    except BackupError:
        return target, None
    if getattr(task, "backup_id_from_run", False) is True:
        backup_id = backup_id_for(run_context(context), name)
    return name, backup_id if isinstance(backup_id, str) else None


def ui_base() -> str:
    """The Airflow UI's address (``[api] base_url``), without a trailing slash."""
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")


def run_url(dag_id: str | None, run_id: str | None) -> str | None:
    """The UI page of a DAG run."""
    from urllib.parse import quote

    if not dag_id or not run_id:
        return None
    return f"{ui_base()}/dags/{dag_id}/runs/{quote(run_id)}"


def alert_from_context(context: Context) -> Alert:
    """A critical alert for a failed task (task-level callback) or DAG run (DAG-level one)."""
    ti: Any = context.get("ti")
    dag: Any = context.get("dag")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None)
    run_id = getattr(ti, "run_id", None) or context.get("run_id")
    task_id = getattr(ti, "task_id", None)
    map_index = getattr(ti, "map_index", None)
    if task_id and isinstance(map_index, int) and map_index >= 0:
        task_id = f"{task_id}[{map_index}]"
    target, backup_id = _target_and_backup(context.get("task") or getattr(ti, "task", None),
                                           context)
    reason = context.get("reason")
    exc = context.get("exception")
    error = (f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else
             str(exc) if exc else f"the DAG run failed ({reason or 'unknown reason'})")
    title = (f"{dag_id}: run failed ({reason})" if reason else
             f"{dag_id}: task {task_id} failed" + (f" for {target}" if target else ""))
    log_url = getattr(ti, "log_url", None) if ti is not None else None
    return Alert(title=title, notification_type="critical", error=redact(error), dag_id=dag_id,
                 task_id=task_id, run_id=run_id, target=target, backup_id=backup_id,
                 log_url=log_url or run_url(dag_id, run_id),
                 details=_outcome(ti, dag_id, task_id, reason))


def _outcome(ti: Any, dag_id: str | None, task_id: str | None, reason: Any) -> tuple[str, ...]:
    """What the failure means for the run, and what comes next."""
    tries, most = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    if reason or not task_id:
        outcome = f"Outcome: the run failed ({reason or 'unknown reason'})"
    elif isinstance(tries, int) and isinstance(most, int):
        outcome = f"Outcome: the run fails: task {task_id} failed on try {tries} of {most + 1}"
    else:
        outcome = f"Outcome: the run fails: task {task_id} failed"
    return outcome, f"Next: a 'resolved' message when a run of {dag_id} succeeds"


class BackupAlertNotifier(BaseNotifier):
    """Sends :class:`Alert` s through one channel; as a callback it alerts about the failure
    in the context it is given."""

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Nothing to render: the message is built from the context, never templated (error
        text may hold ``{{``). Also spares dag.test's DAG callbacks, whose DAG cannot render."""

    def notify(self, context: Context) -> None:
        self.send_alert(alert_from_context(context))

    async def async_notify(self, context: Context) -> None:
        await asyncio.to_thread(self.notify, context)

    def send_alert(self, alert: Alert) -> None:
        """Deliver one alert; subclasses talk to Slack, SMTP or the admin table."""
        raise NotImplementedError
