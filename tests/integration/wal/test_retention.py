"""WAL retention: a segment a stored base backup needs is never deleted; older WAL goes."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.names import segment_name
from amprenta_backup.core.wal.ranges import WalRange
from amprenta_backup.core.wal.retention import clean_wal
from amprenta_backup.core.wal.settings import write_config_file
from amprenta_backup.sandbox.serverenv import wal_command

TARGET = "pg_main.pitr"
SIZE = 16 * 1024 * 1024


@pytest.fixture
def archive(tmp_path: Path) -> WalArchive:
    """TL1 segments 1..12 (with a .backup file), TL2 segments 9..12 and its history file."""
    archive = WalArchive(LocalStorage(tmp_path / "store"), "database", TARGET)
    source = tmp_path / "segment"
    for timeline, numbers in ((1, range(1, 13)), (2, range(9, 13))):
        for n in numbers:
            source.write_bytes(f"{timeline}/{n}".encode() * 1000)
            archive.push(source, segment_name(timeline, n))
    source.write_text("START WAL LOCATION: 0/3000028\n")
    archive.push(source, "000000010000000000000003.00000028.backup")
    source.write_text("1\t0/9000000\tno recovery target specified\n")
    archive.push(source, "00000002.history")
    return archive


def store_base_backup(archive: WalArchive, backup_id: str, timeline: int, start: int) -> str:
    wal = WalRange(timeline, f"0/{start:X}000028", f"0/{start:X}000100", SIZE,
                   datetime(2026, 11, 1, tzinfo=UTC))
    folder = layout.backup_folder("database", TARGET, backup_id)
    manifest = Manifest(backup_id=backup_id, target=TARGET, database="", kind="physical",
                        key=f"{folder}/base.tar.zst", format="pg_basebackup-tar",
                        compression="server-zstd:3", stored_bytes=1, raw_bytes=1, sha256=None,
                        started_at=wal.stop_time, completed_at=wal.stop_time,
                        server_version="15", pg_dump_version="15", wal=wal.to_dict())
    archive.storage.put_bytes(layout.manifest_key(folder), manifest.to_json())
    return layout.manifest_key(folder)


def names(archive: WalArchive) -> list[str]:
    return list(archive.list_names())


def test_without_a_base_backup_nothing_is_deleted(archive: WalArchive) -> None:
    before = names(archive)
    report = clean_wal(archive)
    assert report.removed == [] and names(archive) == before


def test_wal_before_the_oldest_base_backup_goes_and_everything_after_stays(
        archive: WalArchive) -> None:
    store_base_backup(archive, "20261101T000000Z-00000001", 1, 5)
    store_base_backup(archive, "20261108T000000Z-00000002", 1, 9)
    report = clean_wal(archive)
    assert report.removed == [segment_name(1, n) for n in range(1, 3)] + [
        "000000010000000000000003", "000000010000000000000003.00000028.backup",
        segment_name(1, 4)]
    assert report.keep_from == {"00000001": segment_name(1, 5)}
    left = names(archive)
    assert [segment_name(1, n) for n in range(5, 13)] == [n for n in left if n[:8] == "00000001"]
    assert [segment_name(2, n) for n in range(9, 13)] == [n for n in left if len(n) == 24
                                                         and n[:8] == "00000002"]
    assert "00000002.history" in left
    assert not [o for o in archive.storage.list_objects("database/pg_main.pitr/wal/")
                if o.key.split("/")[-1].startswith(tuple(report.removed))]


def test_a_base_backup_on_a_later_timeline_frees_the_earlier_one(archive: WalArchive) -> None:
    store_base_backup(archive, "20261108T000000Z-00000003", 2, 10)
    clean_wal(archive)
    assert names(archive) == ["00000002.history", segment_name(2, 10), segment_name(2, 11),
                              segment_name(2, 12)]


def test_when_retention_removes_the_old_base_backup_its_wal_follows(
        archive: WalArchive) -> None:
    old = store_base_backup(archive, "20261101T000000Z-00000001", 1, 2)
    store_base_backup(archive, "20261108T000000Z-00000002", 1, 7)
    assert clean_wal(archive).removed == [segment_name(1, 1)]
    archive.storage.delete([old])
    assert clean_wal(archive).removed[-1] == segment_name(1, 6)
    assert names(archive)[0] == segment_name(1, 7)


def test_the_cli_dry_run_reports_and_keeps_everything(archive: WalArchive,
                                                       tmp_path: Path) -> None:
    store_base_backup(archive, "20261101T000000Z-00000001", 1, 5)
    before = names(archive)
    config = write_config_file(tmp_path / "wal.env", {
        "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path / "store"),
        "BACKUP_WAL_TARGET": TARGET})
    done = subprocess.run([wal_command(None), "--config", str(config), "cleanup", "--dry-run"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "would remove 5 WAL files" in done.stdout
    assert names(archive) == before
