"""WalSegmentArchivedTrigger: polls backup storage until a WAL segment is archived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.settings import BackupConfig, StorageConfig
from amprenta_backup.core.wal.archive import WalArchive

ERRORS_BEFORE_GIVING_UP = 5


def storage_kwargs(config: BackupConfig) -> dict[str, Any]:
    """The plain, serializable storage settings of ``config``."""
    return config.storage.model_dump()


class WalSegmentArchivedTrigger(BaseTrigger):
    """Fires once ``segment`` of ``target`` is completely archived, or at the deadline.

    Events: ``{"status": "archived" | "timeout" | "error", "segment": ..., "message": ...}``.

    :param segment: WAL segment name
    :param target: name the WAL is stored under (BACKUP_WAL_TARGET)
    :param storage: storage settings, see :func:`storage_kwargs`
    :param deadline: epoch seconds after which it gives up
    :param poll_interval: seconds between looks
    """

    def __init__(self, segment: str, target: str, storage: dict[str, Any], deadline: float,
                 poll_interval: float = 10.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.segment = segment
        self.target = target
        self.storage = storage
        self.deadline = deadline
        self.poll_interval = poll_interval
        self._archive: WalArchive | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"segment": self.segment, "target": self.target, "storage": self.storage,
                 "deadline": self.deadline, "poll_interval": self.poll_interval})

    def _archived(self) -> bool:
        if self._archive is None:
            from amprenta_backup.core.engine import BackupEngine
            from amprenta_backup.hooks.storage import BackupStorageHook

            config = BackupConfig(storage=StorageConfig(**self.storage))  # no catalog needed
            engine = BackupEngine(config, storage=BackupStorageHook(config).get_storage())
            self._archive = engine.wal_archive(self.target)
        return self._archive.has(self.segment)

    def _event(self, status: str, message: str = "") -> TriggerEvent:
        payload = {"status": status, "segment": self.segment, "message": message}
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        errors = 0
        while True:
            try:
                if await asyncio.to_thread(self._archived):
                    yield self._event("archived")
                    return
                errors = 0
            except BackupError as exc:
                errors += 1
                self.log.warning("looking for %s failed (%d): %s", self.segment, errors, exc)
                if errors >= ERRORS_BEFORE_GIVING_UP:
                    yield self._event("error", str(exc))
                    return
            if time.time() >= self.deadline:
                yield self._event("timeout")
                return
            await asyncio.sleep(self.poll_interval)
