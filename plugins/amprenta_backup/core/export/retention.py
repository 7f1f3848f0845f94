"""Retention of project exports: the backups' ``BACKUP_RETENTION_DAYS`` and ``BACKUP_KEEP_LAST``
applied to the ``exports`` table and the objects of each export in storage."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.export.store import (
    COMPLETED,
    DELETED,
    ExportRecords,
    export_folder,
    info_key,
    zip_key,
)
from amprenta_backup.core.storage.base import Storage

log = logging.getLogger(__name__)


@dataclass
class ExportCleanupReport:
    """Which exports a retention run removed (or would remove) and which it kept."""

    dry_run: bool
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    bytes_freed: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (f"exports: {verb} {len(self.removed)} ({self.bytes_freed} bytes), kept "
                f"{self.kept}, {len(self.errors)} errors")

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "removed": self.removed, "kept": self.kept,
                "bytes_freed": self.bytes_freed, "errors": self.errors}


def expire_exports(records: ExportRecords, storage: Storage, prefix: str, now: datetime,
                   retention_days: int, keep_last: int = 0, dry_run: bool = False
                   ) -> ExportCleanupReport:
    """Remove the exports started more than ``retention_days`` before ``now``, except the
    newest ``keep_last`` completed ones: ``export.json`` first (the export is then
    unfinished by definition), the ZIP and leftovers next, then the row is marked deleted."""
    report = ExportCleanupReport(dry_run)
    cutoff = now - timedelta(days=retention_days)
    alive = [r for r in records.find(limit=100_000) if r.status != DELETED]
    protected = {r.export_id for r in [r for r in alive if r.status == COMPLETED][:keep_last]}
    for record in alive:
        if record.started_at >= cutoff or record.export_id in protected:
            report.kept += 1
            continue
        report.removed.append(record.export_id)
        report.bytes_freed += record.size_bytes or 0
        if dry_run:
            continue
        try:
            storage.delete([info_key(prefix, record.export_id)])
            leftovers = [o.key for o in storage.list_objects(
                export_folder(prefix, record.export_id) + "/")]
            storage.delete(sorted({zip_key(prefix, record.export_id), *leftovers}))
            records.mark_deleted(record.export_id, f"retention: older than {retention_days} "
                                                   "days (BACKUP_RETENTION_DAYS)")
        except BackupError as exc:
            report.removed.remove(record.export_id)
            report.errors.append(f"export {record.export_id}: {exc}")
    log.info("%s", report.summary())
    return report
