"""The storage index of backups (used when the catalog is unreachable): what it believes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from amprenta_backup.core import layout
from amprenta_backup.core.models import Manifest, Status
from amprenta_backup.core.recovery.index import StorageCatalog
from amprenta_backup.core.storage import LocalStorage


def _manifest(target: str, when: datetime, backup_id: str | None = None) -> Manifest:
    backup_id = backup_id or layout.make_backup_id(when)
    key = f"database/{target}/{when:%Y/%m/%d}/{backup_id}/dump.pgc.zst"  # inside its folder
    return Manifest(backup_id=backup_id, target=target, database="app", kind="logical",
                    key=key, format="custom", compression="zstd", stored_bytes=10,
                    raw_bytes=20, sha256="0" * 64, started_at=when, completed_at=when,
                    server_version="15.8", pg_dump_version="15.8", table_counts={"t": 1})


def _store(storage: LocalStorage, manifest: Manifest, folder: str | None = None) -> None:
    folder = folder or layout.backup_folder("database", manifest.target, manifest.backup_id)
    storage.put_bytes(layout.manifest_key(folder), manifest.to_json())


def test_newest_first_by_target_and_time(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    old = _manifest("pg_main", datetime(2026, 11, 1, tzinfo=UTC))
    new = _manifest("pg_main", datetime(2026, 11, 20, tzinfo=UTC))
    other = _manifest("pg_crm", datetime(2026, 11, 10, tzinfo=UTC))
    for manifest in (old, new, other):
        _store(storage, manifest)
    index = StorageCatalog(storage, "database", "the catalog is unreachable (test)")
    assert [r.backup_id for r in index.find()] == [new.backup_id, other.backup_id,
                                                   old.backup_id]
    assert [r.backup_id for r in index.find(target="pg_main", limit=1)] == [new.backup_id]
    before = index.find(target="pg_main", before=datetime(2026, 11, 15, tzinfo=UTC))
    assert [r.backup_id for r in before] == [old.backup_id]
    record = index.get(other.backup_id)
    assert record is not None and record.status == Status.COMPLETED
    assert record.location == storage.uri(layout.backup_folder("database", "pg_crm",
                                                               other.backup_id))
    assert index.writable is False and index.set_status(other.backup_id, Status.VERIFIED) is False


def test_planted_manifests_are_skipped(tmp_path: Path) -> None:
    """A manifest in another backup's folder, with a hostile target, or from the future does
    not pose as a backup (nor as the newest one)."""
    storage = LocalStorage(tmp_path)
    real = _manifest("pg_main", datetime(2026, 11, 1, tzinfo=UTC))
    _store(storage, real)
    other = _manifest("pg_main", datetime(2026, 11, 2, tzinfo=UTC))
    _store(storage, other, layout.backup_folder("database", "pg_main", real.backup_id)
           .replace(real.backup_id, real.backup_id[:-1] + ("0" if real.backup_id.endswith("f")
                                                           else "f")))  # a folder not its own
    hostile = _manifest("../../etc", datetime(2026, 11, 3, tzinfo=UTC))
    _store(storage, hostile, "database/x/2026/11/03/" + hostile.backup_id)
    future = _manifest("pg_main", datetime.now(UTC) + timedelta(days=400))
    _store(storage, future)
    index = StorageCatalog(storage, "database", "test")
    assert [r.backup_id for r in index.find()] == [real.backup_id]
