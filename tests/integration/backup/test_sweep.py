"""The sweep of abandoned runs (core/records/heartbeat.py) against a real backup: a run whose
catalog record was left RUNNING after its manifest was stored finished after all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import RunContext, Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.records.heartbeat import sweep_abandoned
from amprenta_backup.core.storage import LocalStorage
from tests.support.backups import SETTINGS


def test_a_stored_manifest_turns_an_abandoned_running_record_into_its_completed_backup(
    local_storage: LocalStorage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    backup_id = layout.make_backup_id(datetime.now(UTC), "swept")
    manifest = BackupRunner(local_storage, catalog, SETTINGS).run(
        "pg_source", source_conn, RunContext(), backup_id)
    stored = sorted((o.key, o.size) for o in local_storage.list_objects(""))
    with catalog.cursor() as cur:  # the run died after its manifest, before its record
        cur.execute("UPDATE backup_records SET status = 'running', manifest = NULL, "
                    "sha256 = NULL, completed_at = NULL, heartbeat_at = now() - interval "
                    "'1 hour' WHERE id = %s", (manifest.backup_id,))
    assert [r.status for r in catalog.find(target="pg_source")] == [Status.RUNNING]

    (found,) = sweep_abandoned(local_storage, catalog, SETTINGS.prefix,
                               timeout=timedelta(minutes=10))

    assert found.backup_id == manifest.backup_id
    record = catalog.get(manifest.backup_id)
    assert record is not None and record.status == Status.COMPLETED
    assert record.sha256 == manifest.sha256 and record.manifest is not None
    assert record.manifest.table_counts == manifest.table_counts
    folder = layout.backup_folder(SETTINGS.prefix, "pg_source", manifest.backup_id)
    assert record.location == local_storage.uri(folder)
    # nothing of the finished backup was removed as a partial
    assert sorted((o.key, o.size) for o in local_storage.list_objects("")) == stored
