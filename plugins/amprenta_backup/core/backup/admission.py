"""Open a backup's record from a thread while its dump starts.

Sweeping abandoned runs, making the S3 client (botocore's imports and the client: 0.1-0.3 s
of Python), asking storage whether the backup completed already and whether it is usable, and
saving the record RUNNING used to come before ``pg_dump`` started. Now :class:`Admission` does
all of that in a thread while the main thread prepares the source and ``pg_dump`` streams; the
dump's first bytes are held in memory (:class:`HeldWriter`, at most :data:`HOLD_BYTES`) until
storage has answered. The record is saved RUNNING by that thread as soon as storage answers,
whatever the dump is doing (waiting on a table lock, say), so the run's heartbeat
(core/records/heartbeat.py) beats for it from then on. If storage refuses, or already holds
the finished backup, the work registered with :meth:`Admission.stop_with` (the ``pg_dump``
child and its server query, the source's sessions, even those waiting on a lock) is stopped
at once, and nothing is recorded or written.

The thread's catalog calls open their own connections (``Catalog.held()`` keeps one for its
own thread only); the main thread touches the catalog again only after :meth:`Admission.wait`.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING

from amprenta_backup.core.backup.lifecycle import save_start
from amprenta_backup.core.errors import StorageError
from amprenta_backup.core.models import BackupRecord, Manifest, Status
from amprenta_backup.core.records.manifests import stored_manifest
from amprenta_backup.core.storage.base import ObjectWriter, Storage
from amprenta_backup.core.storage.multipart import run_in_thread

if TYPE_CHECKING:
    from amprenta_backup.core.catalog import Catalog

log = logging.getLogger(__name__)

HOLD_BYTES = 16 * 1024 * 1024
"""The most dump bytes held in memory while storage is being checked (about 0.5 s of a
200 MiB database's compressed dump on two cores); then the dump waits for the answer."""


class AlreadyCompleted(Exception):  # noqa: N818 (not an error: the backup exists)
    """Storage holds a finished backup under this id: the dump started early was stopped."""

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(f"backup {manifest.backup_id} already completed")
        self.manifest = manifest


class Admission:
    """One backup's way from "not started" to "recorded RUNNING", in a thread of its own.

    :param storage: where the backup goes
    :param catalog: where the record goes
    :param folder: the backup's folder
    :param record: the record, RUNNING, not yet saved; the thread saves a copy of it, started
        at the catalog's clock, and :meth:`wait` sets that start time on it
    :param before: run first in the thread (the sweep of abandoned runs)
    """

    def __init__(self, storage: Storage, catalog: Catalog, folder: str, record: BackupRecord,
                 before: Callable[[], object] = lambda: None) -> None:
        self._storage, self._catalog, self._folder = storage, catalog, folder
        self._record, self._before = record, before
        self._started = dataclasses.replace(record, status=Status.RUNNING)
        self._answer: Future[None] | None = None
        self._lock = threading.Lock()
        self._stops: list[Callable[[], object]] = []
        self._settled: bool | None = None  # True once recorded, False once refused

    def start(self) -> None:
        """Start the thread: sweep, ask storage, save the record RUNNING."""
        self._answer = run_in_thread(self._admit, "admission")

    def _admit(self) -> None:
        try:
            self._before()
            done = stored_manifest(self._storage, self._folder)
            if done is not None:
                raise AlreadyCompleted(done)
            self._storage.check_ready()
            self._started.started_at = self._catalog.now()
            save_start(self._catalog, self._started)
        except BaseException:
            self._settle(False)
            raise
        self._settle(True)

    def _settle(self, recorded: bool) -> None:
        with self._lock:
            self._settled = recorded
            stops, self._stops = self._stops, []
        if not recorded:
            for stop in stops:
                _quietly(stop)

    def stop_with(self, stop: Callable[[], object]) -> None:
        """Call ``stop`` if the backup is refused (at once, if it was already; never, once
        it is recorded)."""
        with self._lock:
            if self._settled is None:
                self._stops.append(stop)
            if self._settled is not False:
                return
        _quietly(stop)

    @property
    def answered(self) -> bool:
        return self._answer is not None and self._answer.done()

    def wait(self) -> None:
        """Wait until the record is saved RUNNING; raises what stopped that instead: the
        storage's error, the catalog's (nothing recorded, nothing written), or
        :class:`AlreadyCompleted`."""
        if self._answer is None:
            self.start()
        assert self._answer is not None
        self._answer.result()
        self._record.started_at = self._started.started_at


STOP_SECONDS = 5.0
"""How long a stopped ``pg_dump`` gets to cancel its query and exit before it is killed."""


def stop_tool(proc: subprocess.Popen[bytes]) -> Callable[[], None]:
    """How a refusal stops a ``pg_dump`` child: SIGTERM, on which pg_dump cancels its server
    query (a COPY, or a LOCK TABLE waiting on a lock, which a SIGKILL would leave waiting
    without its client) and exits; SIGKILL if it has not gone in :data:`STOP_SECONDS`."""
    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
    return stop


def _quietly(stop: Callable[[], object]) -> None:
    try:
        stop()
    except Exception as exc:  # it ended by itself meanwhile: nothing to stop
        log.debug("stopping refused work: %s", exc)


class HeldWriter(ObjectWriter):
    """Holds the first bytes of an object until the backup is admitted, then opens the real
    writer and passes everything on; it waits for admission as soon as storage has answered,
    or when :data:`HOLD_BYTES` are held, or at commit. Aborting before that throws away what
    it held.

    :param admission: the backup's admission
    :param open_writer: opens the real writer, a context manager as ``Storage.open_writer``
        gives (entered once, after admission)
    :param limit: the most bytes held
    """

    def __init__(self, admission: Admission, open_writer: Callable[[], ObjectWriter],
                 limit: int = HOLD_BYTES) -> None:
        super().__init__()
        self._admission, self._open, self._limit = admission, open_writer, limit
        self._held: list[bytes] = []
        self._size = 0
        self._opened: ObjectWriter | None = None
        self._target: ObjectWriter | None = None

    def write(self, data: bytes) -> int:
        target = self._target
        if target is None:
            if not self._admission.answered and self._size + len(data) <= self._limit:
                self._held.append(bytes(data))
                self._size += len(data)
                return len(data)
            target = self._release()
        return target.write(data)

    def _release(self) -> ObjectWriter:
        self._admission.wait()
        self._opened = self._open()
        target = self._target = self._opened.__enter__()
        while self._held:
            target.write(self._held.pop(0))
        self._size = 0
        return target

    def _commit(self) -> None:
        if self._target is None:
            try:
                self._release()
            except BaseException:  # refused, or the held bytes did not go: nothing is left
                self.abort()
                raise
        assert self._opened is not None
        self._opened.__exit__(None, None, None)

    def _abort(self) -> None:
        self._held.clear()
        if self._opened is not None:
            stop = StorageError("the write was aborted")
            self._opened.__exit__(StorageError, stop, None)
