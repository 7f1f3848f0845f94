"""EngineOperator: the base of operators that make one call into the engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import (
    FORM_ASSIGN,
    ChecksumMismatch,
    ConfigError,
    PreconditionError,
    reword,
)
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.hooks.engine import EngineHook

REFUSALS = (ChecksumMismatch, ConfigError, PreconditionError)
"""Errors a retry cannot fix: bad settings or input, a refused request, a corrupt backup."""


@contextmanager
def fail_without_retry(words: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn :data:`REFUSALS` into ``AirflowFailException`` (the task fails, no retry).

    :param words: request field -> the trigger form's label for it, to name the fields in
        the message as the form does (``Confirm: sales``, not ``confirm='sales'``)
    """
    try:
        yield
    except REFUSALS as exc:
        message = reword(str(exc), words, FORM_ASSIGN) if words else str(exc)
        raise AirflowFailException(message) from None


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
