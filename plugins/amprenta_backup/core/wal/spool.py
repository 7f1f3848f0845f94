"""The spool folder of asynchronous WAL archiving: one marker per stored or failed push.

The archiver process (``wal_async``) writes ``ok/NAME`` once NAME is stored and
``error/NAME`` when a push failed; ``amprenta-wal push`` consumes the marker of its segment.
While it pushes NAME it holds an exclusive lock on ``busy/NAME``: the shell line of
:mod:`.shellpush` waits on that lock (``flock -s``) instead of polling.
Only ``os``-level calls: the per-segment call of PostgreSQL imports this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from pathlib import Path
from typing import IO

from amprenta_backup.core.errors import ConfigError

LOCK_RETRY_SECONDS = 0.5  # how long a new archiver tries for the lock before it gives way
HOLD_RETRY_SECONDS = 0.02  # how long the archiver tries for busy/NAME before it pushes anyway


class Spool:
    """A private folder of ``ok/NAME`` and ``error/NAME`` markers, a lock and a log.

    :param root: the folder (created mode 700; refused if another user owns it)
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ok_dir = root / "ok"
        self.error_dir = root / "error"
        self.busy_dir = root / "busy"
        self.lock_path = root / "archiver.lock"
        self.log_path = root / "archiver.log"

    def prepare(self) -> Spool:
        """Create the folders, or refuse a folder this user does not own privately."""
        for path in (self.root.parent, self.root):
            path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(self.root)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or \
                stat.S_IMODE(info.st_mode) & 0o077:
            raise ConfigError(f"spool folder {self.root} must be a directory owned by uid "
                              f"{os.getuid()} with mode 700; remove it or set BACKUP_WAL_SPOOL "
                              "to another folder")
        for folder in (self.ok_dir, self.error_dir, self.busy_dir):
            folder.mkdir(mode=0o700, exist_ok=True)
        return self

    def take_ok(self, name: str) -> bool:
        """Consume the marker saying ``name`` is stored; False if there is none."""
        try:
            (self.ok_dir / name).unlink()
        except FileNotFoundError:
            return False
        return True

    def error(self, name: str) -> str | None:
        """The archiver's last error about ``name``; it stays until a push succeeds."""
        try:
            return (self.error_dir / name).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None

    def mark(self, name: str, ok: bool, text: str) -> None:
        """Record the outcome of one push (written to a temp name, then renamed)."""
        folder = self.ok_dir if ok else self.error_dir
        temp = folder / f".{name}.{os.getpid()}.tmp"
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, folder / name)
        if ok:
            self.clear_error(name)

    def clear_error(self, name: str) -> None:
        (self.error_dir / name).unlink(missing_ok=True)

    def prune(self, ready: set[str]) -> None:
        """Drop markers of files that are no longer waiting to be archived."""
        for folder in (self.ok_dir, self.error_dir, self.busy_dir):
            for entry in os.scandir(folder):
                if not entry.name.startswith(".") and entry.name not in ready:
                    Path(entry.path).unlink(missing_ok=True)

    def hold(self, name: str) -> int | None:
        """Lock ``busy/NAME`` while NAME is pushed (the shell line waits on it); the file
        descriptor, or None if the lock is not free within ``HOLD_RETRY_SECONDS`` (then the
        line hands NAME to ``push``, which polls for the marker instead)."""
        try:
            fd = os.open(self.busy_dir / name, os.O_RDONLY | os.O_CREAT, 0o600)
        except OSError:
            return None
        deadline = time.monotonic() + HOLD_RETRY_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                # the shell line holds it shared for the instant of its `flock ... true` (it
                # came first); given up at once, 3 of 20 segments of a steady load went to
                # `push` here
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.001)
            except OSError:
                break
        os.close(fd)
        return None

    def release(self, name: str, fd: int) -> None:
        """Unlock ``busy/NAME`` once its marker is written: whoever waits on it wakes up."""
        with contextlib.suppress(FileNotFoundError):
            (self.busy_dir / name).unlink()
        os.close(fd)

    def archiver_running(self) -> bool:
        """Whether an archiver process holds the lock."""
        with contextlib.suppress(FileNotFoundError), open(self.lock_path, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
        return False

    def lock(self) -> IO[bytes] | None:
        """Take the archiver lock and write this process's pid into it; None if another
        archiver holds it. Keep the handle open."""
        handle = open(self.lock_path, "ab")  # noqa: SIM115 - held for the process's life
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # a running archiver holds it for good; archiver_running() of a waiting push
                # holds it shared for a moment: seen once under load as a 10 s stall (the new
                # archiver left, the push waited out its start grace)
                if time.monotonic() >= deadline:
                    handle.close()
                    return None
                time.sleep(0.01)
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        return handle

    def archiver_pid(self) -> int | None:
        """The pid of the running archiver (written into its lock), None if none runs."""
        if not self.archiver_running():
            return None
        with contextlib.suppress(OSError, ValueError):
            return int(self.lock_path.read_text(encoding="ascii").strip())
        return None
