"""Which backup a drill restores: only those in the configured storage, or the one named."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.drill.runner import DrillRunner
from amprenta_backup.core.errors import PreconditionError
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage, Storage
from tests.integration.drill.test_runner import (  # noqa: F401  (source_runner: the fixture)
    SOURCE,
    _by_name,
    _folder,
    _run,
    source_runner,
)
from tests.support.backups import make_backup


def test_backups_outside_the_configured_storage_are_left_out_in_one_sentence(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo, tmp_path: Path,
    source_runner: Callable[..., DrillRunner],  # noqa: F811  (the fixture)
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The catalog also lists a newer backup kept in another storage (a second bucket, an old
    path): the drill drills the newest one it can read, and says so once."""
    here = make_backup(local_storage, catalog, source_conn,
                       when=datetime.now(UTC) - timedelta(hours=2))
    elsewhere = LocalStorage(tmp_path / "other-storage")
    away = make_backup(elsewhere, catalog, source_conn)
    root = local_storage.uri("")

    record = source_runner().run(SOURCE, _run())
    assert record.passed is True and record.backup_id == here.backup_id
    sentence = (f"target pg_source: 1 backups stored outside the configured storage {root} "
                f"(e.g. {elsewhere.uri(_folder(away))}) are not drilled")
    assert [r.getMessage() for r in caplog.records].count(sentence) == 1

    # named outright, it is refused in one sentence, logged once
    caplog.clear()
    refused = source_runner().run(SOURCE, _run(), backup_id=away.backup_id)
    assert refused.passed is False and refused.backup_id is None
    detail = _by_name(refused)["setup"].detail
    assert detail == (f"backup {away.backup_id} is stored at {elsewhere.uri(_folder(away))}, "
                      f"outside the configured storage {root}; point BACKUP_STORAGE_TYPE / "
                      "BACKUP_S3_BUCKET / BACKUP_LOCAL_PATH at the storage that holds it")
    assert sum(detail in r.getMessage() for r in caplog.records) == 1


def test_a_drill_can_be_told_which_backup_to_restore(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
    source_runner: Callable[..., DrillRunner],  # noqa: F811  (the fixture)
) -> None:
    older = make_backup(local_storage, catalog, source_conn,
                        when=datetime.now(UTC) - timedelta(days=3))
    make_backup(local_storage, catalog, source_conn)

    record = source_runner().run(SOURCE, _run(), backup_id=older.backup_id)
    assert record.passed is True and record.backup_id == older.backup_id
    assert record.strategy == "given"
    with pytest.raises(PreconditionError, match=f"backup {older.backup_id} is a backup of "
                                                "pg_source, not of pg_other"):
        source_runner().given("pg_other", older.backup_id)
    with pytest.raises(PreconditionError, match="backup 20200101T000000Z-00000000 is not in "
                                                "the catalog; pick one from `amprenta-backup "
                                                "list`"):
        source_runner().given("pg_source", "20200101T000000Z-00000000")
