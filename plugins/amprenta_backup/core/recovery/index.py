"""The backups as the manifests in storage describe them, for when the catalog is unreachable.

Storage is the source of truth: every finished backup has a ``manifest.json`` beside its dump.
:class:`StorageCatalog` answers the catalog's read questions (``get``, ``find``) from those
manifests, so ``list``, ``show``, ``verify`` and ``restore`` by id keep working with the
catalog server gone. It records nothing: writes are logged and dropped (``writable`` False).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import psycopg

from amprenta_backup.core.catalog import Catalog, record_from_manifest, stored_manifests
from amprenta_backup.core.errors import CatalogError
from amprenta_backup.core.models import BackupRecord, Status, utcnow
from amprenta_backup.core.storage.base import Storage

log = logging.getLogger(__name__)


class StorageCatalog(Catalog):
    """A read-only catalog read from the manifests under ``prefix`` (scanned once, on first use).

    Every record is COMPLETED: verification results live in the catalog, not in storage.

    :param storage: where the backups are
    :param prefix: the configured key prefix
    :param reason: why the catalog database is not used (said in every refusal to write)
    """

    writable = False

    def __init__(self, storage: Storage, prefix: str, reason: str) -> None:
        self.storage = storage
        self.prefix = prefix
        self.reason = reason
        self._records: list[BackupRecord] | None = None

    @property
    def records(self) -> Sequence[BackupRecord]:
        """Every backup in storage, newest first."""
        if self._records is None:
            found = [record_from_manifest(manifest, self.storage.uri(folder), Status.COMPLETED)
                     for folder, manifest in stored_manifests(self.storage, self.prefix)]
            self._records = sorted(found, key=lambda r: r.started_at, reverse=True)
        return self._records

    def describe(self) -> str:
        return f"the manifests in {self.storage.uri(self.prefix)} (catalog unreachable)"

    def probe(self) -> None:
        """Storage answers for itself: nothing to check."""

    def now(self) -> datetime:
        """No catalog server to ask: this worker's clock."""
        return utcnow()

    def get(self, backup_id: str) -> BackupRecord | None:
        return next((r for r in self.records if r.backup_id == backup_id), None)

    def find(self, target: str | None = None, statuses: Iterable[Status] | None = None,
             limit: int | None = None, before: datetime | None = None,
             started_after: datetime | None = None) -> list[BackupRecord]:
        wanted = None if statuses is None else set(statuses)
        found = [r for r in self.records
                 if (target is None or r.target == target)
                 and (wanted is None or r.status in wanted)
                 and (before is None or r.started_at < before)
                 and (started_after is None or r.started_at >= started_after)]
        return found if limit is None else found[:max(limit, 0)]

    def save(self, record: BackupRecord) -> None:
        log.warning("backup %s is %s: not recorded, %s", record.backup_id, record.status,
                    self.reason)

    def set_status(self, backup_id: str, status: Status, error: str | None = None) -> bool:
        log.warning("backup %s would now be %s: not recorded, %s", backup_id, status, self.reason)
        return False

    def cursor(self) -> AbstractContextManager[psycopg.Cursor[dict[str, Any]]]:
        raise CatalogError(f"this needs the catalog database, and {self.reason}")

    def rebuild(self, storage: Storage, prefix: str = "") -> int:
        raise CatalogError(f"cannot rebuild the catalog: {self.reason}")


def targets_in(records: Iterable[BackupRecord], kind: str = "logical") -> list[str]:
    """The targets that have backups of ``kind``, sorted."""
    return sorted({r.target for r in records if r.kind == kind})


__all__ = ["StorageCatalog", "targets_in"]
