"""EngineOperator: the base of operators that make one call into the engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ChecksumMismatch, ConfigError, PreconditionError
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.hooks.engine import EngineHook

REFUSALS = (ChecksumMismatch, ConfigError, PreconditionError)
"""Errors a retry cannot fix: bad settings or input, a refused request, a corrupt backup."""


@contextmanager
def fail_without_retry() -> Iterator[None]:
    """Turn :data:`REFUSALS` into ``AirflowFailException`` (the task fails, no retry)."""
    try:
        yield
    except REFUSALS as exc:
        raise AirflowFailException(str(exc)) from None


class EngineOperator(BaseOperator):
    """An operator over a :class:`BackupEngine` built from ``BACKUP_*`` and Airflow connections.

    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    def __init__(self, *, config: BackupConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config

    @cached_property
    def engine(self) -> BackupEngine:
        return EngineHook(self.config).engine
