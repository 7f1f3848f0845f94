"""Backup folders of any age and status, written into real storage and a real catalog."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog, record_from_manifest
from amprenta_backup.core.models import BackupRecord, Manifest, Status
from amprenta_backup.core.storage import Storage


def stored_backup(storage: Storage, catalog: Catalog, target: str, started: datetime,
                  status: Status = Status.COMPLETED, size: int = 1000, manifest: bool = True,
                  prefix: str = "database") -> BackupRecord:
    """A backup folder as the engine lays it out (the dump, and the manifest unless the backup
    failed, is running, or ``manifest`` is False) with its catalog record.

    The dump holds random bytes: retention and health only look at objects and records.
    """
    backup_id = layout.make_backup_id(started, f"{target}/{started.isoformat()}/{status}")
    folder = layout.backup_folder(prefix, target, backup_id)
    data = os.urandom(size)
    key = layout.dump_key(folder, compressed=True)
    storage.put_bytes(key, data)
    meta = Manifest(backup_id=backup_id, target=target, database="app", kind="logical",
                    key=key, format="pg_dump-custom", compression="zstd", stored_bytes=size,
                    raw_bytes=3 * size, sha256=hashlib.sha256(data).hexdigest(),
                    started_at=started, completed_at=started + timedelta(minutes=2),
                    server_version="15.1", pg_dump_version="15.1")
    unfinished = status in (Status.FAILED, Status.RUNNING)
    if manifest and not unfinished:
        storage.put_bytes(layout.manifest_key(folder), meta.to_json())
    record = record_from_manifest(meta, storage.uri(folder), status)
    if unfinished:
        record.manifest = None
        record.error = "step 'manifest' failed: disk full" if status == Status.FAILED else None
    catalog.save(record)
    return record
