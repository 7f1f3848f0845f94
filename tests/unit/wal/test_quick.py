"""The per-segment fast path of ``amprenta-wal push`` (core/wal/quick.py): it finds or waits
for the archiver's marker with the standard library only, and never answers "stored" without
one. Real processes and a real LocalStorage archive; the "archiver" that holds the lock is the
test process itself (it writes the markers a real archiver writes)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from amprenta_backup.core.settings import WalSettings
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.quick import plain_wal_name, quick_push, spool_folder
from amprenta_backup.core.wal.settings import write_config_file
from amprenta_backup.core.wal.spool import Spool

NAME = "000000010000000000000005"
HEAVY = {"click", "pydantic", "boto3", "botocore", "zstandard", "psycopg", "re", "pathlib",
         "hashlib", "typing", "json"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "pg_wal" / "archive_status").mkdir(parents=True)
    (tmp_path / "pg_wal" / NAME).write_bytes(b"w" * (1 << 20))
    return {"BACKUP_WAL_TARGET": "pg_main", "BACKUP_STORAGE_TYPE": "local",
            "BACKUP_LOCAL_PATH": str(tmp_path / "store"), "BACKUP_WAL_SPOOL": str(tmp_path / "s"),
            "BACKUP_WAL_IDLE_EXIT_SECONDS": "1"}


@pytest.fixture
def spool(tmp_path: Path, env: dict[str, str]) -> Spool:
    return Spool(WalSettings.from_env(env).spool_dir(tmp_path / "pg_wal")).prepare()


def push(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``amprenta-wal push pg_wal/NAME NAME`` as PostgreSQL runs it (cwd = the data dir)."""
    return subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "amprenta_backup.cli.wal", "push",
         f"pg_wal/{NAME}", NAME], cwd=tmp_path, env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if "|" in line}


def test_the_fast_path_looks_in_the_folder_the_archiver_writes_to(
        tmp_path: Path, env: dict[str, str], spool: Spool) -> None:
    assert spool_folder(env, str(tmp_path / "pg_wal")) == str(spool.root)
    link = tmp_path / "wal-link"
    link.symlink_to(tmp_path / "pg_wal")  # resolved like Path.resolve()
    assert spool_folder(env, str(link)) == str(spool.root)


@pytest.mark.parametrize(("name", "plain"), [
    (NAME, True), ("00000002.history", True), (f"{NAME}.partial", False),
    (f"{NAME}.00000028.backup", False), ("0000000100000000000000ab", False),
    ("../../etc/passwd", False)])
def test_only_plain_segment_and_history_names_take_the_fast_path(name: str, plain: bool) -> None:
    assert plain_wal_name(name) is plain


def test_no_marker_and_no_archiver_answers_not_stored_at_once(
        tmp_path: Path, env: dict[str, str], spool: Spool) -> None:
    argv = ["push", str(tmp_path / "pg_wal" / NAME), NAME]
    stored, waited = quick_push(argv, env)
    assert stored is False and waited < 0.5  # the full path starts an archiver
    spool.mark(NAME, True, "sha")
    assert quick_push(argv, env) == (True, 0.0)
    assert quick_push(argv, env)[0] is False  # the marker was consumed


def test_a_config_file_others_can_read_is_left_to_the_full_path(
        tmp_path: Path, env: dict[str, str], spool: Spool) -> None:
    config = write_config_file(tmp_path / "wal.env", env)
    spool.mark(NAME, True, "sha")
    argv = ["--config", str(config), "push", str(tmp_path / "pg_wal" / NAME), NAME]
    config.chmod(0o644)
    assert quick_push(argv, {})[0] is False  # the full path refuses it with the reason
    config.chmod(0o600)
    assert quick_push(argv, {})[0] is True


def test_push_waits_for_the_running_archiver_with_the_standard_library_only(
        tmp_path: Path, env: dict[str, str], spool: Spool) -> None:
    lock = spool.lock()  # this process is the running archiver
    assert lock is not None
    try:
        proc = push(tmp_path, env)
        time.sleep(1.0)
        assert proc.poll() is None  # still waiting: never success before the marker
        spool.mark(NAME, True, "sha")  # the segment is stored now
        _, stderr = proc.communicate(timeout=30)
    finally:
        lock.close()
    assert proc.returncode == 0, stderr
    assert not HEAVY & imported(stderr)
    assert not spool.take_ok(NAME)


def test_an_error_while_the_push_waits_makes_it_push_the_segment_itself(
        tmp_path: Path, env: dict[str, str], spool: Spool) -> None:
    archive = WalArchive(LocalStorage(tmp_path / "store"), "database", "pg_main")
    lock = spool.lock()
    assert lock is not None
    try:
        proc = push(tmp_path, env)
        threading.Timer(0.5, spool.mark, (NAME, False, "StorageError: bucket gone")).start()
        _, stderr = proc.communicate(timeout=60)
    finally:
        lock.close()
    assert proc.returncode == 0, stderr
    assert "pushing it directly" in stderr and "click" in imported(stderr)
    assert archive.has(NAME) and spool.error(NAME) is None
