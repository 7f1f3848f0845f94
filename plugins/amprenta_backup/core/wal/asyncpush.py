"""Asynchronous WAL archiving, as pgBackRest does it: push ``.ready`` segments ahead.

One long-lived process (:class:`AsyncArchiver`) watches ``pg_wal/archive_status`` and pushes
every ``.ready`` file, several at once, recording each stored one in the spool folder.
``amprenta-wal push`` then only finds its segment's marker (no boto3, no zstandard) and
answers PostgreSQL success once that segment is stored (:func:`await_push`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.wal.spool import Spool
from amprenta_backup.core.wal.wakeup import Wakeup

log = logging.getLogger(__name__)

READY = ".ready"
RETRY_FAILED_AFTER = 10.0
POLL_SECONDS = 0.05  # between two looks at archive_status where inotify is missing
WATCHED_SECONDS = 1.0  # ... and where new files wake the archiver (back-offs, idle exit)


def ready_names(pg_wal: Path) -> list[str]:
    """WAL files PostgreSQL has marked ``.ready``, history files first, then oldest first."""
    try:
        names = [e.name[: -len(READY)] for e in os.scandir(pg_wal / "archive_status")
                 if e.name.endswith(READY)]
    except FileNotFoundError:
        raise ConfigError(f"{pg_wal} has no archive_status folder; is it a pg_wal folder?") \
            from None
    return sorted(names, key=lambda n: (not n.endswith(".history"), n))


PushFunc = Callable[[Path, str], str]


class AsyncArchiver:
    """Pushes every ``.ready`` WAL file of one cluster ahead of PostgreSQL's archiver.

    :param pg_wal: the cluster's ``pg_wal`` folder
    :param spool: where outcomes are recorded
    :param push: ``(path, name) -> sha256``; raises on failure (called from worker threads)
    :param parallel: pushes at the same time
    :param idle_exit_seconds: return after this long without work; 0 = run until stopped
    :param catchup: pushes a segment while the archiver is behind (a faster zstd level), or
        None to push every segment with ``push``
    :param catchup_backlog: segments waiting behind one from which ``catchup`` pushes it, and
        the ones after it until no segment waits
    """

    def __init__(self, pg_wal: Path, spool: Spool, push: PushFunc, parallel: int = 2,
                 idle_exit_seconds: float = 60.0, catchup: PushFunc | None = None,
                 catchup_backlog: int = 8) -> None:
        self.pg_wal = pg_wal
        self.spool = spool
        self.push = push
        self.parallel = parallel
        self.idle_exit_seconds = idle_exit_seconds
        self.catchup = catchup
        self.catchup_backlog = catchup_backlog
        self.caught_up = 0  # segments pushed by ``catchup``
        self._behind = False
        self._running: dict[str, Future[str]] = {}
        self._held: dict[str, int] = {}  # busy/NAME locks of the running pushes
        self._done: set[str] = set()
        self._failed: dict[str, float] = {}
        self.pushed = 0
        self.stop_requested = False
        self._wakeup: Wakeup | None = None

    def run(self) -> None:
        """Push until idle for ``idle_exit_seconds`` (or until ``stop_requested``)."""
        idle_since = time.monotonic()
        self._wakeup = Wakeup(self.pg_wal / "archive_status")
        pause = WATCHED_SECONDS if self._wakeup.watching else POLL_SECONDS
        try:
            with ThreadPoolExecutor(self.parallel, thread_name_prefix="wal-push") as pool:
                while not self.stop_requested:
                    busy = self.step(pool)
                    now = time.monotonic()
                    if busy:
                        idle_since = now
                    elif self.idle_exit_seconds and now - idle_since >= self.idle_exit_seconds:
                        break
                    self._wakeup.wait(min(pause, self.idle_exit_seconds or pause))
                for future in list(self._running.values()):
                    future.cancel()
            self._collect()
        finally:
            for name in list(self._held):
                self.spool.release(name, self._held.pop(name))
            self._wakeup.close()
            self._wakeup = None

    def step(self, pool: ThreadPoolExecutor) -> bool:
        """Collect finished pushes and start new ones; True while pushes run (files failing
        in their back-off do not keep the process alive)."""
        self._collect()
        ready = ready_names(self.pg_wal)
        waiting = set(ready)
        self._done &= waiting
        self.spool.prune(waiting | set(self._running))
        now = time.monotonic()
        for index, name in enumerate(ready):
            if len(self._running) >= self.parallel:
                break
            if name in self._running or name in self._done:
                continue
            if now - self._failed.get(name, -RETRY_FAILED_AFTER) < RETRY_FAILED_AFTER:
                continue
            fd = self.spool.hold(name)
            if fd is not None:
                self._held[name] = fd
            future = pool.submit(self._pusher(len(ready) - index - 1), self.pg_wal / name, name)
            if self._wakeup is not None:  # its slot is refilled the moment it finishes
                future.add_done_callback(self._wakeup.ring)
            self._running[name] = future
        return bool(self._running)

    def _pusher(self, waiting: int) -> PushFunc:
        """``catchup`` from ``catchup_backlog`` segments waiting behind this one until none
        waits: the tail of a backlog goes at the fast level too (at the normal one, the last
        8 segments of a 64-segment drain took 40-50 CPU-ms more each, on 2 busy cores)."""
        behind = self.catchup is not None and (
            waiting >= self.catchup_backlog or (self._behind and waiting > 0))
        if behind != self._behind:
            self._behind = behind
            log.info("%d files wait: %s", waiting, "catching up (faster compression)" if behind
                     else "caught up (normal compression)")
        if self.catchup is not None and behind:
            self.caught_up += 1
            return self.catchup
        return self.push

    def _collect(self) -> None:
        for name, future in list(self._running.items()):
            if not future.done():
                continue
            del self._running[name]
            try:
                self._outcome(name, future)
            finally:  # after the marker: a shell line waiting on busy/NAME finds it
                if name in self._held:
                    self.spool.release(name, self._held.pop(name))

    def _outcome(self, name: str, future: Future[str]) -> None:
        """Record one finished push: its marker, or its error and back-off."""
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self.spool.mark(name, True, future.result())
            self._done.add(name)
            self._failed.pop(name, None)
            self.pushed += 1
        elif isinstance(error, FileNotFoundError) or "No such file" in str(error):
            self._done.add(name)  # archived and recycled meanwhile
        else:
            log.warning("pushing %s failed: %s", name, error)
            self.spool.mark(name, False, f"{type(error).__name__}: {error}")
            self._failed[name] = time.monotonic()


def await_push(spool: Spool, name: str, wait_seconds: float, start_archiver: Callable[[], None],
               push_now: Callable[[], object], start_grace: float = 10.0) -> str:
    """Return once ``name`` is stored: ``"spool"`` if the archiver stored it, ``"direct"`` if
    this process had to push it itself (no archiver could start, or the archiver failed: its
    error marker stays until a push succeeds, so a retry by PostgreSQL never waits for the
    archiver's back-off).

    Raises :class:`TimeoutError` when a running archiver has not stored it in time.
    """
    if spool.take_ok(name):
        return "spool"
    deadline = time.monotonic() + wait_seconds
    started_at: float | None = None
    seen_running = False
    while True:
        if spool.take_ok(name):
            return "spool"
        error = spool.error(name)
        if error is not None:
            log.warning("the archiver could not push %s (%s); pushing it directly", name, error)
            push_now()
            spool.clear_error(name)
            return "direct"
        if spool.archiver_running():
            seen_running = True
        elif started_at is None or seen_running:  # none yet, or the one that ran has died
            start_archiver()
            started_at, seen_running = time.monotonic(), False
        elif time.monotonic() - started_at > start_grace:
            if spool.take_ok(name):
                return "spool"
            log.warning("the archiver is not running (see %s); pushing %s directly",
                        spool.log_path, name)
            push_now()
            return "direct"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} was not stored within {wait_seconds:.0f} s by the "
                               f"archiver process (log: {spool.log_path}); PostgreSQL will retry")
        time.sleep(0.01)
