"""Defaults shared by every DAG of the package: start date, retries, tags, failure alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from amprenta_backup.core.settings import TaskSettings
from amprenta_backup.notifiers.alerts import failure_callbacks

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = ["amprenta-backup"]


def task_retries() -> int:
    """``BACKUP_TASK_RETRIES`` (default 3), with an error that names it when malformed."""
    return TaskSettings.from_env().retries


def default_args(**overrides: Any) -> dict[str, Any]:
    """Task defaults: retries (``BACKUP_TASK_RETRIES``, default 3) with exponential backoff
    from 5 minutes, capped at 1 hour, and an alert on failure (``BACKUP_ALERT_CHANNELS``)."""
    args: dict[str, Any] = {
        "owner": "data-platform",
        "retries": task_retries(),
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
        "on_failure_callback": failure_callbacks(),
    }
    args.update(overrides)
    return args


def dag_kwargs(**overrides: Any) -> dict[str, Any]:
    """``DAG(...)`` keyword arguments every DAG shares: start date, no catchup, one run at a
    time, tags, task defaults and a DAG-level failure alert; ``overrides`` win
    (``deadline=...``)."""
    kwargs: dict[str, Any] = {
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "tags": TAGS,
        "default_args": default_args(),
        "on_failure_callback": failure_callbacks() or None,
    }
    kwargs.update(overrides)
    return kwargs


def manual_dag_kwargs(**overrides: Any) -> dict[str, Any]:
    """:func:`dag_kwargs` for a DAG a person triggers and watches (restore, disaster
    recovery): no schedule, manual runs only, no task retries."""
    kwargs = dag_kwargs(schedule=None, allowed_run_types=["manual"],
                        default_args=default_args(retries=0))
    kwargs.update(overrides)
    return kwargs


def dry_run_param(shows: str) -> Any:
    """The ``dry_run`` trigger-form field of a manual DAG whose plan task ``shows`` this."""
    from airflow.sdk import Param

    return Param(False, type="boolean", title="Dry run",
                 description=f"Only check and show the plan: {shows}.")
