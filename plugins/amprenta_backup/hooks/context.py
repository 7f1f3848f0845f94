"""Read what the engine needs from an Airflow task context."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from amprenta_backup.core import layout
from amprenta_backup.core.models import RunContext, utcnow

if TYPE_CHECKING:
    from airflow.sdk import Context


def run_context(context: Context) -> RunContext:
    """dag id, run id, logical date (or run_after for manual runs), task and try."""
    dag_run: Any = context.get("dag_run")
    ti: Any = context.get("ti")
    when: datetime | None = getattr(dag_run, "logical_date", None) or getattr(
        dag_run, "run_after", None)
    return RunContext(
        dag_id=getattr(dag_run, "dag_id", None),
        run_id=getattr(dag_run, "run_id", None),
        logical_date=when or utcnow(),
        task_id=getattr(ti, "task_id", None),
        try_number=getattr(ti, "try_number", None),
    )


def backup_id_for(run: RunContext, target: str) -> str:
    """The backup id of ``target`` in this run: the same on every try and cleared re-run."""
    return layout.make_backup_id(run.logical_date or utcnow(),
                                 f"{run.dag_id}/{run.run_id}/{target}")
