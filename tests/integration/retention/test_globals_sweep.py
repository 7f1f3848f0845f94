"""weekly_cleanup removes a run's globals once no backup in storage names them."""

from __future__ import annotations

from datetime import timedelta

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import RunContext, utcnow
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pipeline import Compression
from amprenta_backup.core.retention.globals import sweep_globals
from amprenta_backup.core.storage.base import Storage

SETTINGS = BackupSettings(prefix="database/", compression=Compression(level=1, threads=0))


def test_unnamed_globals_go_once_stale_and_named_ones_stay(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    runner = BackupRunner(local_storage, catalog, SETTINGS)
    kept, gone = (runner.run("pg_source", source_conn, RunContext(), layout.make_backup_id(
        utcnow() - timedelta(minutes=n))) for n in (1, 2))
    kept_ref, gone_ref = kept.globals_ref(), gone.globals_ref()
    assert kept_ref is not None and gone_ref is not None and kept_ref.key != gone_ref.key
    folder = layout.backup_folder("database/", "pg_source", gone.backup_id)
    local_storage.delete([layout.manifest_key(folder), gone.key])  # as cleanup removes it

    fresh = sweep_globals(local_storage, "database/", utcnow(), timedelta(days=1), False)
    assert fresh.removed == []  # younger than a day: a run may still be writing manifests
    later = utcnow() + timedelta(days=2)
    dry = sweep_globals(local_storage, "database/", later, timedelta(days=1), True)
    assert dry.removed == [gone_ref.key.rsplit("/", 1)[0]] and local_storage.exists(gone_ref.key)

    done = sweep_globals(local_storage, "database/", later, timedelta(days=1), False)
    assert done.removed == dry.removed and done.bytes_freed > gone_ref.stored_bytes
    assert not local_storage.exists(gone_ref.key)
    assert local_storage.exists(kept_ref.key)  # still named by a backup's manifest
