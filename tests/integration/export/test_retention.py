"""Retention applies to exports like backups: BACKUP_RETENTION_DAYS and BACKUP_KEEP_LAST."""

from __future__ import annotations

from collections.abc import Callable

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.export.store import export_folder
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage import LocalStorage
from tests.integration.export.conftest import PROJECTS


def test_old_exports_are_removed_and_the_newest_kept(
        export_engine: Callable[..., BackupEngine], catalog: Catalog,
        local_storage: LocalStorage) -> None:
    engine = export_engine(file_columns=())
    old, new = (str(engine.create_project_export(project_ids=[PROJECTS[p]],
                                                 include_files=False)["export_id"])
                for p in ("A", "B"))
    with catalog.cursor() as cur:
        cur.execute("UPDATE exports SET started_at = now() - interval '400 days' WHERE id = %s",
                    (old,))
    exports, now = engine.project_exports(), catalog.now()
    assert exports.expire(BackupConfig(targets=(), keep_last=2), now).removed == []
    dry = exports.expire(BackupConfig(targets=()), now, dry_run=True)
    assert dry.removed == [old] and dry.kept == 1
    assert list(local_storage.list_objects(export_folder("database", old)))
    done = exports.expire(BackupConfig(targets=()), now)
    assert done.removed == [old] and done.bytes_freed > 0 and done.errors == []
    assert list(local_storage.list_objects(export_folder("database", old))) == []
    assert [(r.export_id, r.status) for r in exports.list()] == [(new, "completed"),
                                                                 (old, "deleted")]
