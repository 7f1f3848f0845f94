"""WAL archiving through ``amprenta-wal`` into moto's S3 server, from a real archiving cluster."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from amprenta_backup.core.settings import WalSettings
from amprenta_backup.core.wal.archive import checksum_key
from amprenta_backup.core.wal.names import parse_lsn, segment_of
from amprenta_backup.core.wal.spool import Spool
from amprenta_backup.sandbox.s3server import MotoServer
from tests.support.wal import WalSetup, archiver_stats, start_archiving_cluster, wait_archived


@pytest.fixture(scope="module")
def wal(moto_server: MotoServer) -> Iterator[WalSetup]:
    setup = start_archiving_cluster(moto_server, moto_server.create_bucket("wal-archive"),
                                    "pg_wal_test")
    try:
        setup.cluster.execute("CREATE TABLE t (id int, pad text)")
        yield setup
    finally:
        setup.stop()


@pytest.fixture(scope="module")
def archived(wal: WalSetup) -> list[str]:
    """Three segments with data, switched and archived."""
    names = []
    for round_ in range(3):
        wal.cluster.execute(f"INSERT INTO t SELECT g, repeat('x', 200) FROM "
                            f"generate_series({round_ * 1000}, {round_ * 1000 + 999}) g")
        names.append(wal.switch_wal())
    return names


def test_archive_command_stores_every_segment_with_its_checksum(
        wal: WalSetup, archived: list[str]) -> None:
    stored = list(wal.archive.list_names("00000001"))
    assert set(archived) <= set(stored)
    stats = archiver_stats(wal.cluster)
    assert stats["failed_count"] == 0
    for name in archived:
        key = wal.archive.key(name)
        assert key == f"database/pg_wal_test/wal/00000001/{name}.zst"
        raw = zstandard.ZstdDecompressor().decompress(wal.archive.storage.get_bytes(key))
        assert len(raw) == 16 * 1024 * 1024
        sidecar = wal.archive.storage.get_bytes(checksum_key(key)).decode()
        assert sidecar == f"{hashlib.sha256(raw).hexdigest()}  {name}\n"


def test_segment_arithmetic_matches_pg_walfile_name(wal: WalSetup) -> None:
    """pg_walfile_name(x) names the segment holding the byte before x (an end position)."""
    for lsn in ("0/1", "0/FFFFFF", "0/1000000", "0/1000001", "0/2000100", "1/0", "A/12345678"):
        at_end = wal.cluster.query("SELECT pg_walfile_name(%s::pg_lsn)", params=[lsn])[0][0]
        holding = wal.cluster.query("SELECT pg_walfile_name(%s::pg_lsn + 1)", params=[lsn])[0][0]
        assert segment_of(1, parse_lsn(lsn), end=True) == at_end, lsn
        assert segment_of(1, parse_lsn(lsn)) == holding, lsn


def test_fetch_writes_the_identical_segment(wal: WalSetup, archived: list[str],
                                            tmp_path: Path) -> None:
    dest = tmp_path / "RECOVERYXLOG"
    done = wal.cli("fetch", archived[0], str(dest))
    assert done.returncode == 0, done.stderr
    expected = wal.archive.stored_checksum(archived[0])
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == expected
    assert not list(tmp_path.glob("*partial*"))


def test_fetch_of_a_missing_segment_fails_quickly_with_a_clear_message(
        wal: WalSetup, tmp_path: Path) -> None:
    started = time.monotonic()
    done = wal.cli("fetch", "0000000100000000000000FF", str(tmp_path / "RECOVERYXLOG"))
    assert done.returncode == 1
    assert "0000000100000000000000FF is not in the WAL archive at s3://wal-archive/" \
           "database/pg_wal_test/wal/00000001/" in done.stderr
    assert time.monotonic() - started < 5
    assert not (tmp_path / "RECOVERYXLOG").exists()


def test_repush_of_identical_content_succeeds_and_changes_nothing(
        wal: WalSetup, archived: list[str], tmp_path: Path) -> None:
    segment = tmp_path / archived[1]
    assert wal.cli("fetch", archived[1], str(segment)).returncode == 0
    key = wal.archive.key(archived[1])
    before = wal.archive.storage.client.head_object(Bucket=wal.archive.storage.bucket, Key=key)
    done = wal.cli("push", str(segment), archived[1], env={"BACKUP_WAL_ASYNC": "false"})
    assert done.returncode == 0, done.stderr
    after = wal.archive.storage.client.head_object(Bucket=wal.archive.storage.bucket, Key=key)
    assert after["LastModified"] == before["LastModified"]


def test_push_of_different_content_under_an_archived_name_fails_loudly(
        wal: WalSetup, archived: list[str], tmp_path: Path) -> None:
    impostor = tmp_path / archived[2]
    impostor.write_bytes(b"\0" * 16 * 1024 * 1024)
    original = wal.archive.stored_checksum(archived[2])
    done = wal.cli("push", str(impostor), archived[2], env={"BACKUP_WAL_ASYNC": "false"})
    assert done.returncode == 1
    assert f"{archived[2]} is already archived" in done.stderr
    assert "different content" in done.stderr and "refusing to overwrite" in done.stderr
    assert wal.archive.stored_checksum(archived[2]) == original


def test_a_second_cluster_on_the_same_target_shows_failures_in_pg_stat_archiver(
        wal: WalSetup, archived: list[str], moto_server: MotoServer) -> None:
    """A new cluster's first segment name is already archived (by ``wal``) with other bytes."""
    other = start_archiving_cluster(moto_server, wal.archive.storage.bucket, wal.archive.target)
    try:
        other.cluster.execute("CREATE TABLE x AS SELECT 1 AS one")
        first = str(other.cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
        assert wal.archive.has(first)
        deadline = time.monotonic() + 60
        while archiver_stats(other.cluster)["failed_count"] == 0:  # type: ignore[operator]
            assert time.monotonic() < deadline, "the archiver never reported a failure"
            time.sleep(0.2)
        stats = archiver_stats(other.cluster)
        assert stats["last_failed_wal"] <= first  # type: ignore[operator]
        assert stats["last_archived_wal"] is None
        log = other.cluster.log_file.read_text(errors="replace")
        assert "different content" in log and "refusing to overwrite" in log
    finally:
        other.stop()


@pytest.mark.parametrize("damage", ["flipped bytes", "other content"])
def test_fetch_detects_a_corrupted_segment_and_aborts_recovery(
        wal: WalSetup, moto_server: MotoServer, tmp_path: Path, damage: str) -> None:
    """Exit code > 125 makes PostgreSQL stop recovery instead of treating the file as absent."""
    name = "000000010000000000000090"
    source = tmp_path / name
    source.write_bytes(bytes(range(256)) * 65536)
    assert wal.cli("push", str(source), name, env={"BACKUP_WAL_ASYNC": "false"}).returncode == 0
    key = wal.archive.key(name)
    client, bucket = wal.archive.storage.client, wal.archive.storage.bucket
    if damage == "flipped bytes":
        stored = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        stored[len(stored) // 2] ^= 0xFF
        body = bytes(stored)
    else:
        body = zstandard.ZstdCompressor().compress(b"\1" * 16 * 1024 * 1024)
    client.put_object(Bucket=bucket, Key=key, Body=body)
    dest = tmp_path / "RECOVERYXLOG"
    done = wal.cli("fetch", name, str(dest))
    assert done.returncode == 200
    assert "cannot be used for recovery" in done.stderr
    assert ("corrupt" in done.stderr) or ("fails its checksum" in done.stderr)
    assert not dest.exists() and not list(tmp_path.glob("*partial*"))
    wal.archive.storage.delete([key, checksum_key(key)])


def test_archiving_keeps_up_after_a_burst(wal: WalSetup) -> None:
    """Several segments in quick succession are all archived, in order, without failures."""
    names = []
    for _ in range(6):
        wal.cluster.execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 200) g")
        names.append(str(wal.cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0]))
    wait_archived(wal.cluster, names[-1], timeout=60)
    assert set(names) <= set(wal.archive.list_names("00000001"))
    assert archiver_stats(wal.cluster)["failed_count"] == 0


def test_killing_the_archiver_loses_no_segment_postgres_counts_as_archived(
        wal: WalSetup, tmp_path: Path) -> None:
    """SIGKILL of the asynchronous archiver, again and again while segments are produced: every
    segment PostgreSQL marked ``.done`` is in the archive, and fetches back to its bytes."""
    pg_wal = Path(wal.cluster.data_dir) / "pg_wal"
    spool = Spool(WalSettings.from_env(wal.settings).spool_dir(pg_wal))
    names, kills = [], 0
    deadline = time.monotonic() + 60
    while kills < 3 and time.monotonic() < deadline:
        wal.cluster.execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g")
        names.append(str(wal.cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0]))
        time.sleep(0.3)
        pid = spool.archiver_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # mid-push or mid-start: whatever it was doing
                kills += 1
    wait_archived(wal.cluster, names[-1], timeout=120)  # PostgreSQL: all of them archived
    assert kills == 3
    status = pg_wal / "archive_status"
    for name in names:
        assert wal.archive.has(name), name
        if not (status / f"{name}.done").exists():
            continue  # recycled by a checkpoint meanwhile
        local = hashlib.sha256((pg_wal / name).read_bytes()).hexdigest()
        assert wal.archive.fetch(name, tmp_path / name) == local, name
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == local
