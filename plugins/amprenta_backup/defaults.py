"""Defaults shared by every DAG of the package: start date, retries, tags, failure alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from amprenta_backup.core.settings import TaskSettings
from amprenta_backup.notifiers.alerts import failure_callbacks, success_callbacks

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = ["amprenta-backup"]
FUNCTIONS = ("backup", "verify", "restore", "pitr", "drill", "health", "cleanup")
"""The tags by function a DAG may carry besides ``amprenta-backup`` (the UI's tag filter)."""
DATABASE_NAME = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"
"""Trigger-form ``pattern`` of a database name: no control characters, no leading or trailing
space (the plan checks the same, and the 63-byte limit, again)."""


def default_args(**overrides: Any) -> dict[str, Any]:
    """Task defaults: retries (``BACKUP_TASK_RETRIES``, default 3) with exponential backoff
    from ``BACKUP_TASK_RETRY_DELAY_SECONDS`` (5 minutes), capped at 1 hour, and an alert on
    failure (``BACKUP_ALERT_CHANNELS``)."""
    tasks = TaskSettings.from_env()
    args: dict[str, Any] = {
        "owner": "data-platform",
        "retries": tasks.retries,
        "retry_delay": timedelta(seconds=tasks.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
        "on_failure_callback": failure_callbacks(),
    }
    args.update(overrides)
    return args


def function_tags(functions: tuple[str, ...]) -> list[str]:
    """``amprenta-backup`` and the DAG's functions (each one of :data:`FUNCTIONS`)."""
    unknown = sorted(set(functions) - set(FUNCTIONS))
    if unknown or not functions:
        raise ValueError(f"DAG functions {unknown or 'missing'}: give one or more of "
                         f"{', '.join(FUNCTIONS)}")
    return [*TAGS, *functions]


def dag_kwargs(*functions: str, **overrides: Any) -> dict[str, Any]:
    """``DAG(...)`` keyword arguments every DAG shares: start date, no catchup, one run at a
    time, tags (``amprenta-backup`` and the DAG's ``functions``), task defaults, a DAG-level
    failure alert and a "resolved" message after one; ``overrides`` win (``deadline=...``)."""
    kwargs: dict[str, Any] = {
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "tags": function_tags(functions),
        "default_args": default_args(),
        "on_failure_callback": failure_callbacks() or None,
        "on_success_callback": success_callbacks() or None,
    }
    kwargs.update(overrides)
    return kwargs


def server_tools_args(**overrides: Any) -> dict[str, Any]:
    """:func:`default_args` for the tasks of a DAG that starts a PostgreSQL server on the
    worker: on the queue ``BACKUP_SERVER_TASKS_QUEUE`` when it is set."""
    queue = TaskSettings.from_env().server_queue
    return default_args(**({"queue": queue} if queue else {}), **overrides)


def optional_dag_kwargs(*functions: str, **overrides: Any) -> dict[str, Any]:
    """:func:`dag_kwargs` for a scheduled DAG that needs setup beyond ``BACKUP_TARGETS``
    (point-in-time recovery, a scratch server on the worker): paused when Airflow first sees
    it, so a new deployment does not go red before that setup exists; unpause it then."""
    return dag_kwargs(*functions, **{"is_paused_upon_creation": True, **overrides})


def manual_dag_kwargs(*functions: str, **overrides: Any) -> dict[str, Any]:
    """:func:`dag_kwargs` for a DAG a person triggers and watches (restore, disaster
    recovery): no schedule, manual runs only, no task retries."""
    kwargs = dag_kwargs(*functions, schedule=None, allowed_run_types=["manual"],
                        default_args=default_args(retries=0))
    kwargs.update(overrides)
    return kwargs


def pause_writers_param(writes_to: str) -> Any:
    """The ``pause_writers`` field (off) of a manual DAG that restores beside ``writes_to``."""
    from airflow.sdk import Param

    return Param(
        False, type="boolean", title="Pause the writer DAGs",
        description=f"Pause the DAGs that write to {writes_to} while it is restored, "
                    "wait for their running tasks (BACKUP_QUIESCE_WAIT_SECONDS) and resume the "
                    "ones it paused afterwards, also if it fails. The plan names them "
                    "either way; a DAG paused already stays paused.")


def dry_run_param(shows: str) -> Any:
    """The ``dry_run`` trigger-form field of a manual DAG whose plan task ``shows`` this."""
    from airflow.sdk import Param

    return Param(False, type="boolean", title="Dry run",
                 description=f"Only check and show the plan: {shows}.")
