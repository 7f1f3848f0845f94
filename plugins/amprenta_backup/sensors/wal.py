"""WalSegmentSensor: waits (deferred) until a WAL segment is in the archive."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from amprenta_backup.core.pitr.workflow import PointInTime
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.wal.names import check_wal_name
from amprenta_backup.hooks.engine import EngineHook
from amprenta_backup.triggers.wal import WalSegmentArchivedTrigger, storage_kwargs

if TYPE_CHECKING:
    from airflow.sdk import Context


class WalSegmentSensor(BaseSensorOperator):
    """Succeeds once ``segment`` of ``BACKUP_WAL_TARGET`` is completely archived.

    Deferrable by default: the wait runs in the triggerer, not in a worker slot. The default
    ``timeout`` is ``BACKUP_WAL_ARCHIVE_WAIT_SECONDS``; running out fails the task without
    retry, naming the segment and what to check.

    :param segment: WAL segment name (templated), e.g. a base backup's ``stop_segment``
    :param deferrable: wait in the triggerer
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    template_fields: Sequence[str] = ("segment",)
    ui_color = "#e8f0d9"

    def __init__(self, *, segment: str, deferrable: bool = True,
                 config: BackupConfig | None = None, poke_interval: float = 10.0,
                 timeout: float | None = None, **kwargs: Any) -> None:
        if timeout is not None:
            kwargs["timeout"] = timeout
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.wait_timeout = timeout
        self.segment = segment
        self.deferrable = deferrable
        self.config = config

    @cached_property
    def hook(self) -> EngineHook:
        return EngineHook(self.config)

    @cached_property
    def pitr(self) -> PointInTime:
        return self.hook.engine.pitr

    def _timeout(self) -> float:
        return float(self.wait_timeout or self.pitr.settings.archive_wait_seconds)

    def poke(self, context: Context) -> bool:
        name = check_wal_name(self.segment)
        archived = self.pitr.archive.has(name)
        self.log.info("%s %s archived", name, "is" if archived else "is not yet")
        return archived

    def execute(self, context: Context) -> str:
        if self.poke(context):
            return self.segment
        if not self.deferrable:
            self.timeout = self._timeout()
            super().execute(context)
            return self.segment
        self.defer(
            trigger=WalSegmentArchivedTrigger(
                segment=self.segment, target=self.pitr.target,
                storage=storage_kwargs(self.hook.config),
                deadline=time.time() + self._timeout(), poll_interval=self.poke_interval),
            method_name="execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        status = event.get("status")
        if status == "archived":
            self.log.info("%s is archived", event["segment"])
            return str(event["segment"])
        if status == "timeout":
            raise AirflowFailException(
                f"WAL segment {self.segment} was not archived within {self._timeout():.0f} s; "
                "check archive_command and pg_stat_archiver on the server, and the archiver "
                "log in its BACKUP_WAL_SPOOL folder")
        raise AirflowException(f"looking for WAL segment {self.segment} failed: "
                               f"{event.get('message')}")
