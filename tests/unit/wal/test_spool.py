"""Asynchronous archiving: segments pushed ahead, markers, fallbacks, and a light fast path."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from amprenta_backup.core.errors import WalConflict
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.asyncpush import AsyncArchiver, await_push, ready_names
from amprenta_backup.core.wal.spool import Spool

SEGMENTS = [f"0000000100000000000000{n:02X}" for n in range(1, 7)]


@pytest.fixture
def pg_wal(tmp_path: Path) -> Path:
    """A pg_wal folder with six .ready segments (1 MiB each, distinct content)."""
    folder = tmp_path / "pg_wal"
    (folder / "archive_status").mkdir(parents=True)
    for n, name in enumerate(SEGMENTS):
        (folder / name).write_bytes(bytes([n]) * (1 << 20))
        (folder / "archive_status" / f"{name}.ready").touch()
    (folder / "00000002.history").write_text("1\t0/3000000\tno recovery target specified\n")
    (folder / "archive_status" / "00000002.history.ready").touch()
    return folder


@pytest.fixture
def archive(tmp_path: Path) -> WalArchive:
    return WalArchive(LocalStorage(tmp_path / "store"), "database", "pg_main")


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool" / "pg_main-x").prepare()


def push_sha(archive: WalArchive) -> object:
    return lambda path, name: archive.push(path, name).sha256


def test_history_files_go_first_then_oldest_segments(pg_wal: Path) -> None:
    assert ready_names(pg_wal) == ["00000002.history", *SEGMENTS]


def test_the_archiver_pushes_every_ready_file_ahead_and_marks_it(
        pg_wal: Path, archive: WalArchive, spool: Spool) -> None:
    AsyncArchiver(pg_wal, spool, push_sha(archive), parallel=3,  # type: ignore[arg-type]
                  idle_exit_seconds=0.2).run()
    assert list(archive.list_names()) == sorted(["00000002.history", *SEGMENTS])
    assert sorted(os.listdir(spool.ok_dir)) == sorted(["00000002.history", *SEGMENTS])
    # PostgreSQL's archive_command now finds each marker without pushing anything itself
    for name in SEGMENTS:
        how = await_push(spool, name, 5, start_archiver=pytest.fail,  # type: ignore[arg-type]
                         push_now=pytest.fail)  # type: ignore[arg-type]
        assert how == "spool"
    assert not spool.take_ok(SEGMENTS[0])


def test_markers_of_files_no_longer_ready_are_pruned(pg_wal: Path, spool: Spool) -> None:
    spool.mark(SEGMENTS[0], True, "sha")
    spool.mark("0000000100000000000000AA", True, "sha")
    spool.prune(set(ready_names(pg_wal)))
    assert os.listdir(spool.ok_dir) == [SEGMENTS[0]]


def test_a_failed_push_leaves_an_error_that_sends_postgres_to_a_direct_push(
        pg_wal: Path, archive: WalArchive, spool: Spool) -> None:
    conflict = pg_wal / "other"
    conflict.write_bytes(b"x" * 100)
    archive.push(conflict, SEGMENTS[0])  # other content already archived under that name
    AsyncArchiver(pg_wal, spool, push_sha(archive), idle_exit_seconds=0.3).run()  # type: ignore[arg-type]
    assert "WalConflict" in (spool.error(SEGMENTS[0]) or "")
    with pytest.raises(WalConflict, match="different content"):
        await_push(spool, SEGMENTS[0], 5, start_archiver=pytest.fail,  # type: ignore[arg-type]
                   push_now=lambda: archive.push(pg_wal / SEGMENTS[0], SEGMENTS[0]))
    assert spool.error(SEGMENTS[0]) is not None  # kept: the next retry goes direct at once


def test_without_an_archiver_the_segment_is_pushed_directly(
        pg_wal: Path, archive: WalArchive, spool: Spool) -> None:
    started: list[bool] = []
    how = await_push(spool, SEGMENTS[0], 5, start_archiver=lambda: started.append(True),
                     push_now=lambda: archive.push(pg_wal / SEGMENTS[0], SEGMENTS[0]),
                     start_grace=0.1)
    assert (how, started) == ("direct", [True])
    assert archive.has(SEGMENTS[0])


def test_a_stuck_archiver_makes_the_push_fail_so_postgres_retries(spool: Spool) -> None:
    lock = spool.lock()  # an archiver that holds the lock but never stores anything
    try:
        assert lock is not None and spool.archiver_running() and spool.lock() is None
        with pytest.raises(TimeoutError, match="PostgreSQL will retry"):
            await_push(spool, SEGMENTS[0], 0.3, start_archiver=pytest.fail,  # type: ignore[arg-type]
                       push_now=pytest.fail)  # type: ignore[arg-type]
    finally:
        assert lock is not None
        lock.close()
    assert not spool.archiver_running()


def test_a_spool_folder_others_can_enter_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "spool" / "t-1"
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    with pytest.raises(Exception, match="mode 700"):
        Spool(folder).prepare()


def test_push_with_a_marker_imports_neither_boto3_nor_zstandard(
        pg_wal: Path, tmp_path: Path) -> None:
    """The per-segment call stays light: only the standard library when the marker exists."""
    env = {**os.environ, "BACKUP_WAL_TARGET": "pg_main", "BACKUP_STORAGE_TYPE": "local",
           "BACKUP_LOCAL_PATH": str(tmp_path / "store"), "BACKUP_WAL_SPOOL": str(tmp_path / "s")}
    from amprenta_backup.core.settings import WalSettings

    spool = Spool(WalSettings.from_env(env).spool_dir(pg_wal)).prepare()
    spool.mark(SEGMENTS[0], True, "sha")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "amprenta_backup.cli.wal", "push",
         f"pg_wal/{SEGMENTS[0]}", SEGMENTS[0]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert not {"boto3", "botocore", "zstandard", "psycopg", "pydantic"} & imported
    assert not spool.take_ok(SEGMENTS[0])  # consumed


def test_concurrent_pushes_of_the_same_segment_both_succeed(
        pg_wal: Path, archive: WalArchive) -> None:
    errors: list[BaseException] = []

    def push() -> None:
        try:
            archive.push(pg_wal / SEGMENTS[1], SEGMENTS[1])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=push) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and archive.has(SEGMENTS[1])


def test_a_push_looking_at_the_lock_does_not_turn_a_new_archiver_away(spool: Spool) -> None:
    """archiver_running() holds the lock shared for a moment; a new archiver starting just then
    waits for it instead of leaving (a 10 s stall of the first push under load)."""
    import fcntl

    spool.lock_path.touch()
    with open(spool.lock_path, "rb") as probe:
        fcntl.flock(probe, fcntl.LOCK_SH)
        timer = threading.Timer(0.1, probe.close)
        timer.start()
        lock = spool.lock()
        timer.join()
    assert lock is not None
    lock.close()


def test_a_backlog_is_pushed_at_the_catch_up_level_until_none_waits(
        pg_wal: Path, tmp_path: Path, spool: Spool) -> None:
    """Seven files ready, catch-up from three waiting behind: all but the last go at the fast
    level (none waits behind the last), then a new file alone goes at the normal one, and
    every one fetches back identical."""
    archive = WalArchive(LocalStorage(tmp_path / "store"), "database", "pg_main", level=3)
    levels: dict[str, int] = {}

    def at(level: int | None) -> object:
        def push(path: Path, name: str) -> str:
            result = archive.push(path, name, level)
            levels[name] = archive.level if level is None else level
            return result.sha256
        return push

    archiver = AsyncArchiver(pg_wal, spool, at(None), parallel=1,  # type: ignore[arg-type]
                             idle_exit_seconds=0.2, catchup=at(-5),  # type: ignore[arg-type]
                             catchup_backlog=3)
    archiver.run()
    order = ready_names(pg_wal)
    assert [levels[name] for name in order] == [-5, -5, -5, -5, -5, -5, 3]
    assert (archiver.pushed, archiver.caught_up) == (7, 6)
    status = pg_wal / "archive_status"
    for name in order:  # what PostgreSQL does once archive_command succeeded
        (status / f"{name}.ready").rename(status / f"{name}.done")
    late = "0000000100000000000000F0"
    (pg_wal / late).write_bytes(os.urandom(1024))
    (status / f"{late}.ready").touch()
    archiver.run()
    assert levels[late] == 3 and archiver.caught_up == 6
    order.append(late)
    for name in order:
        archive.fetch(name, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == (pg_wal / name).read_bytes()
