"""Defaults shared by every DAG of the package: start date, retries, tags."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = ["amprenta-backup"]


def default_args(**overrides: Any) -> dict[str, Any]:
    """Task defaults: retries (``BACKUP_TASK_RETRIES``, default 3) with exponential backoff
    from 5 minutes, capped at 1 hour."""
    args: dict[str, Any] = {
        "owner": "data-platform",
        "retries": int(os.environ.get("BACKUP_TASK_RETRIES", "3")),
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
    }
    args.update(overrides)
    return args
