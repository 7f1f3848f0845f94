"""The shell archive_command line: it answers 0 from the archiver's marker without Python,
waits on the archiver's busy lock, and hands everything else to ``amprenta-wal push``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.settings import WalSettings
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.asyncpush import AsyncArchiver
from amprenta_backup.core.wal.settings import write_config_file
from amprenta_backup.core.wal.shellpush import archive_command_line
from amprenta_backup.core.wal.spool import Spool

NAME = "000000010000000000000007"


def data_dir(root: Path) -> Path:
    folder = root / "data"
    (folder / "pg_wal" / "archive_status").mkdir(parents=True)
    (folder / "pg_wal" / NAME).write_bytes(b"segment")
    return folder


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Spool, Path]:
    """A data directory, its spool, and a stand-in for amprenta-wal that records its call."""
    stub = tmp_path / "amprenta-wal"
    stub.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/called\nexit 3\n")
    stub.chmod(0o755)
    return data_dir(tmp_path), Spool(tmp_path / "spool" / "t-x").prepare(), stub


def run_as_postgres_does(line: str, data: Path) -> subprocess.CompletedProcess[str]:
    """PostgreSQL's archiver: %p and %f replaced, through /bin/sh, in the data directory."""
    command = line.replace("%p", f"pg_wal/{NAME}").replace("%f", NAME)
    return subprocess.run(["/bin/sh", "-c", command], cwd=data, capture_output=True,
                          text=True, timeout=30)


def line_for(setup: tuple[Path, Spool, Path], wait: float = 20) -> str:
    data, spool, stub = setup
    return archive_command_line(stub, None, data / "pg_wal", spool, wait)


def test_a_stored_segment_is_acknowledged_without_amprenta_wal(
        setup: tuple[Path, Spool, Path], tmp_path: Path) -> None:
    data, spool, _ = setup
    spool.mark(NAME, True, "sha")
    assert run_as_postgres_does(line_for(setup), data).returncode == 0
    assert not (spool.ok_dir / NAME).exists()  # consumed, as push does
    assert not (tmp_path / "called").exists()


def test_no_marker_and_no_archiver_hands_over_to_push(
        setup: tuple[Path, Spool, Path], tmp_path: Path) -> None:
    data, _, _ = setup
    assert run_as_postgres_does(line_for(setup), data).returncode == 3
    assert (tmp_path / "called").read_text().split() == ["push", f"pg_wal/{NAME}", NAME]


@pytest.mark.parametrize("stored", [True, False])
def test_it_waits_on_the_busy_lock_and_answers_by_the_outcome(
        setup: tuple[Path, Spool, Path], tmp_path: Path, stored: bool) -> None:
    """While the archiver holds busy/NAME the line waits; a stored segment is then 0, a failed
    push goes to amprenta-wal push (which pushes it itself and reports the error)."""
    data, spool, _ = setup
    fd = spool.hold(NAME)
    assert fd is not None

    def finish() -> None:
        time.sleep(0.4)
        spool.mark(NAME, stored, "sha" if stored else "StorageError: down")
        spool.release(NAME, fd)

    thread = threading.Thread(target=finish)
    started = time.monotonic()
    thread.start()
    done = run_as_postgres_does(line_for(setup), data)
    thread.join()
    assert time.monotonic() - started >= 0.4
    assert done.returncode == (0 if stored else 3)
    assert (tmp_path / "called").exists() is not stored


def test_a_line_copied_to_another_cluster_never_uses_these_markers(
        setup: tuple[Path, Spool, Path], tmp_path: Path) -> None:
    _, spool, _ = setup
    spool.mark(NAME, True, "sha")  # this cluster's NAME is stored...
    other = data_dir(tmp_path / "other")  # ...the other's file of the same name is not
    assert run_as_postgres_does(line_for(setup), other).returncode == 3
    assert (spool.ok_dir / NAME).exists()


def test_the_archiver_holds_busy_while_it_pushes(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    (data / "pg_wal" / "archive_status" / f"{NAME}.ready").touch()
    spool = Spool(tmp_path / "spool" / "t-x").prepare()
    release, seen = threading.Event(), []

    def push(path: Path, name: str) -> str:
        seen.append(spool.hold(name))  # the archiver holds it: nobody else gets it
        release.wait(10)
        return "sha"

    archiver = AsyncArchiver(data / "pg_wal", spool, push, idle_exit_seconds=0.3)
    thread = threading.Thread(target=archiver.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not (spool.busy_dir / NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # the archiver has taken the segment up
    waiter = subprocess.Popen(["flock", "-s", str(spool.busy_dir / NAME), "true"])
    time.sleep(0.3)
    assert waiter.poll() is None  # flock -s waits while the push runs
    release.set()
    assert waiter.wait(10) == 0 and (spool.ok_dir / NAME).exists()
    thread.join(10)
    assert seen == [None] and not (spool.busy_dir / NAME).exists()


def test_paths_archive_command_cannot_carry_are_refused(setup: tuple[Path, Spool, Path]) -> None:
    data, spool, _ = setup
    with pytest.raises(ConfigError, match="'%'"):
        archive_command_line("/opt/100%/amprenta-wal", None, data / "pg_wal", spool, 60)


def test_the_cli_prints_the_line_of_this_cluster(
        setup: tuple[Path, Spool, Path], tmp_path: Path) -> None:
    data, _, stub = setup
    values = {"BACKUP_WAL_TARGET": "pg_main", "BACKUP_STORAGE_TYPE": "local",
              "BACKUP_LOCAL_PATH": str(tmp_path / "store"),
              "BACKUP_WAL_SPOOL": str(tmp_path / "spools")}
    config = write_config_file(tmp_path / "wal.env", values)

    def cli(pg_wal: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "amprenta_backup.cli.wal", "--config", str(config),
             "archive-command", "--command", str(stub), "--pg-wal", str(pg_wal)],
            env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=60)

    printed = cli(data / "pg_wal")
    assert printed.returncode == 0, printed.stderr
    line = printed.stdout.strip()
    assert f"--config {config} push %p %f" in line
    Spool(WalSettings.from_env(values).spool_dir(data / "pg_wal")).prepare().mark(NAME, True, "s")
    assert run_as_postgres_does(line, data).returncode == 0
    wrong = cli(data)
    assert wrong.returncode == 2 and "is not a pg_wal folder" in wrong.stderr


def test_segments_written_while_the_archiver_runs_need_no_amprenta_wal(
        setup: tuple[Path, Spool, Path], tmp_path: Path) -> None:
    """A steady load: each new .ready file is answered by the shell line alone (the archiver,
    woken by the file, pushes it), and what was acknowledged fetches back identical."""
    data, spool, _ = setup
    archive = WalArchive(LocalStorage(tmp_path / "store"), "p", "t")
    archiver = AsyncArchiver(data / "pg_wal", spool, lambda path, name: archive.push(
        path, name).sha256, idle_exit_seconds=5)
    held = spool.lock()  # as `amprenta-wal archiver` holds it
    thread = threading.Thread(target=archiver.run)
    thread.start()
    names = [f"0000000100000000000000{n:02X}" for n in range(0x20, 0x26)]
    try:
        for n, name in enumerate(names):
            time.sleep(0.2)  # the archiver idles between two segments, as under a light load
            (data / "pg_wal" / name).write_bytes(os.urandom(1 << 16) + bytes([n]) * (1 << 20))
            (data / "pg_wal" / "archive_status" / f"{name}.ready").touch()
            line = line_for(setup).replace("%p", f"pg_wal/{name}").replace("%f", name)
            done = subprocess.run(["/bin/sh", "-c", line], cwd=data, timeout=30)
            assert done.returncode == 0, name
            os.rename(data / "pg_wal" / "archive_status" / f"{name}.ready",
                      data / "pg_wal" / "archive_status" / f"{name}.done")
    finally:
        archiver.stop_requested = True
        thread.join(30)
        assert held is not None
        held.close()
    assert not (tmp_path / "called").exists()  # no Python started for any of them
    for name in names:
        assert archive.fetch(name, tmp_path / "back") == archive.stored_checksum(name)
        assert (tmp_path / "back").read_bytes() == (data / "pg_wal" / name).read_bytes()
