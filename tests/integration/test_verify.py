"""Verification of real backups in real storage: intact ones pass, every kind of damage is named."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import zstandard

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import ChecksumMismatch, PreconditionError
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo, tool
from amprenta_backup.core.storage import LocalStorage, Storage
from amprenta_backup.core.verify import history, pending, verify_backup
from tests.support.backups import (
    damage_archive_then_checksum,
    engine_for,
    flip_byte,
    make_backup,
    rewrite,
    truncate,
)


def test_an_intact_backup_in_s3_is_verified_and_recorded(
    s3_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    manifest = make_backup(s3_storage, catalog, source_conn)
    engine = engine_for(s3_storage, catalog, {"pg_source": source_conn})

    assert engine.verify_backup(manifest.backup_id) is True

    record = catalog.get(manifest.backup_id)
    assert record is not None and record.status == Status.VERIFIED and record.error is None
    (row,) = history(catalog, manifest.backup_id)
    assert row["ok"] is True and row["checked"] == ["manifest", "sha256", "size", "archive"]
    assert row["actual_sha256"] == row["expected_sha256"] == manifest.sha256
    assert row["stored_bytes"] == manifest.stored_bytes and row["raw_bytes"] == manifest.raw_bytes
    assert pending(catalog) == []


@pytest.mark.parametrize(("damage", "expected"), [
    (flip_byte, "sha256 of the stored bytes is"),
    (truncate, "bytes are stored, the manifest says"),
])
def test_damaged_bytes_are_found_named_and_recorded(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
    damage: Callable[[bytes], bytes], expected: str,
) -> None:
    manifest = make_backup(local_storage, catalog, source_conn)
    rewrite(local_storage, manifest.key, damage)
    record = catalog.get(manifest.backup_id)
    assert record is not None

    result = verify_backup(local_storage, catalog, record)

    assert not result.ok and expected in result.detail
    assert "pg_restore could not read the whole archive" in result.detail
    with pytest.raises(ChecksumMismatch) as raised:
        result.raise_if_corrupt()
    assert f"backup {manifest.backup_id} of target pg_source is CORRUPT" in str(raised.value)
    after = catalog.get(manifest.backup_id)
    assert after is not None and after.status == Status.CORRUPT
    assert after.error is not None and expected in after.error
    assert [row["ok"] for row in history(catalog, manifest.backup_id)] == [False]


def test_a_missing_manifest_and_a_missing_object_are_reported_as_such(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    no_manifest = make_backup(local_storage, catalog, source_conn)
    no_object = make_backup(local_storage, catalog, source_conn, target="pg_other")
    folder = no_manifest.key.rsplit("/", 1)[0]
    local_storage.delete([layout.manifest_key(folder)])
    local_storage.delete([no_object.key])
    engine = engine_for(local_storage, catalog, {})

    first = engine.verify(no_manifest.backup_id)
    second = engine.verify(no_object.backup_id)

    assert first.problems == (f"manifest missing: {local_storage.uri(folder)}/manifest.json",)
    assert second.problems == (f"object missing: {local_storage.uri(no_object.key)}",)
    assert {r.backup_id: r.status for r in catalog.find()} == {
        no_manifest.backup_id: Status.CORRUPT, no_object.backup_id: Status.CORRUPT}


def test_the_full_read_catches_a_damaged_archive_that_pg_restore_list_misses(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo, tmp_path,
) -> None:
    forged = damage_archive_then_checksum(local_storage, make_backup(local_storage, catalog,
                                                                     source_conn))
    archive = tmp_path / "damaged.pgc"
    archive.write_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(
        local_storage.get_bytes(forged.key)))
    listing = subprocess.run([tool("pg_restore"), "--list", str(archive)], capture_output=True)
    assert listing.returncode == 0  # the table of contents alone looks fine

    result = verify_backup(local_storage, catalog, forged)

    assert result.checked == ("manifest", "sha256", "size", "archive")
    assert len(result.problems) == 1
    assert result.problems[0].startswith("pg_restore could not read the whole archive")


def test_storage_that_does_not_hold_the_backup_marks_nothing(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo, tmp_path,
) -> None:
    manifest = make_backup(local_storage, catalog, source_conn)
    elsewhere = engine_for(LocalStorage(tmp_path / "wrong-folder"), catalog, {})

    with pytest.raises(PreconditionError, match="outside the configured storage"):
        elsewhere.verify(manifest.backup_id)

    record = catalog.get(manifest.backup_id)
    assert record is not None and record.status == Status.COMPLETED


def test_pending_lists_unverified_backups_of_a_time_window(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    week = datetime(2026, 11, 15, 5, tzinfo=UTC)
    old, inside, verified = (make_backup(local_storage, catalog, source_conn, when=w)
                             for w in (week - timedelta(days=3), week + timedelta(days=2),
                                       week + timedelta(days=3)))
    for manifest in (old, inside, verified):  # started_at is when the backup ran: set it
        record = catalog.get(manifest.backup_id)
        assert record is not None
        record.started_at = layout.backup_time(manifest.backup_id)
        catalog.save(record)
    catalog.set_status(verified.backup_id, Status.VERIFIED)

    window = pending(catalog, started_after=week, before=week + timedelta(weeks=1))
    everything = pending(catalog)

    assert [r.backup_id for r in window] == [inside.backup_id]
    assert [r.backup_id for r in everything] == [inside.backup_id, old.backup_id]


def test_verified_backups_are_read_again_after_the_reverify_period(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    """Bit rot after the first verification: BACKUP_REVERIFY_DAYS brings a backup back."""
    old, recent = (make_backup(local_storage, catalog, source_conn) for _ in range(2))
    fresh = make_backup(local_storage, catalog, source_conn)  # completed, never verified
    engine = engine_for(local_storage, catalog, {"pg_source": source_conn})
    assert engine.verify_backup(old.backup_id) and engine.verify_backup(recent.backup_id)
    with catalog.cursor() as cur:
        cur.execute("UPDATE backup_verifications SET verified_at = now() - interval '40 days' "
                    "WHERE backup_id = %s", (old.backup_id,))
    month = timedelta(days=30)
    assert [r.backup_id for r in pending(catalog)] == [fresh.backup_id]
    assert [r.backup_id for r in pending(catalog, reverify_after=month)] == [
        fresh.backup_id, old.backup_id]
    assert [r.backup_id for r in pending(catalog, reverify_after=month, limit=1)] == [
        fresh.backup_id]
    rewrite(local_storage, old.key, flip_byte)  # the rot the second read must find
    assert engine.verify_backup(old.backup_id) is False
    record = catalog.get(old.backup_id)
    assert record is not None and record.status == Status.CORRUPT
