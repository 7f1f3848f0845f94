"""Parallel logical backups: several ``pg_dump`` streams at once, all on one exported snapshot.

The tables big enough to matter (``BACKUP_DUMP_MIN_TABLE_MB``) are packed into groups of about
equal size, largest first, each into the lightest group. The first stream is ``pg_dump -Fc``
of the whole database except the data of the tables in the other groups (schema, the small
tables, sequences, large objects, and the sizeable tables packed with them); every other
stream is ``pg_dump -Fc --data-only`` of one group's tables. Each stream goes through the same
pipeline as a single-stream backup (zstd, sha256, encryption, bounded upload) into an object of
its own, so nothing is spooled to local disk and memory grows by one pipeline per stream.
See docs/parallel-backups.md for why this shape and not ``pg_dump -Fd -j``.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql

from amprenta_backup.core import layout
from amprenta_backup.core.constants import usable_cores
from amprenta_backup.core.encryption import KeyService, backup_identity, seal_for
from amprenta_backup.core.models import DumpPart
from amprenta_backup.core.pipeline import Compression, StreamProgress, stream_command
from amprenta_backup.core.storage.base import Storage

log = logging.getLogger(__name__)

MAX_AUTO_JOBS = 4
MAX_SPLIT_TABLES = 1000  # the biggest tables only: each is locked twice and named on argv
SECTION_ALL, SECTION_DATA = "all", "data"
PARALLEL_FORMAT = "pg_dump-custom-parts"

_SIZES = b"""
SELECT n.nspname, c.relname, pg_table_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence IN ('p', 'u')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 3 DESC, 1, 2
"""


@dataclass(frozen=True)
class TableSize:
    """One table and its size (``pg_table_size``: heap and TOAST, no indexes)."""

    schema: str
    name: str
    bytes: int

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def pattern(self) -> str:
        """A ``pg_dump --table`` pattern that matches exactly this table (quoted: no
        wildcards, case and dots kept)."""
        return ".".join('"' + part.replace('"', '""') + '"' for part in (self.schema, self.name))


@dataclass(frozen=True)
class DumpPlan:
    """Which tables' data each stream dumps; ``groups[0]`` is the whole-database stream (the
    sizeable tables that stay in it), the others data-only streams.

    :param groups: the tables of each stream
    :param rest_bytes: the size of the tables too small for a stream of their own
    """

    groups: tuple[tuple[TableSize, ...], ...]
    rest_bytes: int = 0

    @property
    def parallel(self) -> bool:
        return len(self.groups) > 1

    @property
    def moved(self) -> tuple[TableSize, ...]:
        """The tables whose data is in a data-only stream (left out of the first one)."""
        return tuple(t for group in self.groups[1:] for t in group)

    def group_bytes(self, index: int) -> int:
        return sum(t.bytes for t in self.groups[index]) + (self.rest_bytes if index == 0 else 0)


def resolve_jobs(setting: int) -> int:
    """``BACKUP_DUMP_JOBS`` as a number of streams: ``0`` means two per usable CPU core, at
    most :data:`MAX_AUTO_JOBS` (a stream waits on its server COPY and its pipe about half the
    time: on 2 cores 4 streams beat 2, see docs/parallel-backups.md)."""
    if setting > 0:
        return setting
    return max(1, min(2 * usable_cores(), MAX_AUTO_JOBS))


def share_threads(compression: Compression, streams: int) -> Compression:
    """The zstd settings of each of ``streams`` streams: the threads shared out, and none at
    all (each stream compresses in its own thread) where a stream's share is one thread.

    One worker per stream adds no compressing thread (its stream's thread only hands it the
    input and waits), only a second runnable thread per stream: on 2 cores, 2 streams of 1
    worker each ran 0.80-0.85x of one stream against 0.66-0.69x compressing in the streams'
    own threads, with 9 MiB less peak RSS (docs/parallel-backups.md, load 3-5).
    """
    share = compression.threads // streams
    return replace(compression, threads=share if share >= 2 else 0)


def plan_dump(tables: Sequence[TableSize], jobs: int, min_bytes: int) -> DumpPlan:
    """Pack the sizeable tables (the :data:`MAX_SPLIT_TABLES` biggest; the others count with
    the small ones) into at most ``jobs`` streams of about equal size; one stream when ``jobs``
    is 1 or fewer than two tables are sizeable."""
    sizeable = sorted((t for t in tables if t.bytes >= max(min_bytes, 1)),
                      key=lambda t: (-t.bytes, t.label))[:MAX_SPLIT_TABLES]
    rest = sum(t.bytes for t in tables) - sum(t.bytes for t in sizeable)
    if jobs < 2 or len(sizeable) < 2:
        return DumpPlan(groups=((),), rest_bytes=rest)
    loads = [rest] + [0] * (min(jobs, len(sizeable) + 1) - 1)
    groups: list[list[TableSize]] = [[] for _ in loads]
    for table in sizeable:
        lightest = min(range(len(loads)), key=lambda i: (loads[i], i))
        loads[lightest] += table.bytes
        groups[lightest].append(table)
    kept = [tuple(groups[0])] + [tuple(g) for g in groups[1:] if g]
    return DumpPlan(groups=tuple(kept), rest_bytes=rest)


def read_tables(db: psycopg.Connection[Any]) -> list[TableSize]:
    """Every table whose data ``pg_dump`` dumps, with its size, biggest first."""
    return [TableSize(str(s), str(n), int(b)) for s, n, b in db.execute(_SIZES).fetchall()]


def lock_moved(db: psycopg.Connection[Any], plan: DumpPlan) -> None:
    """Hold ACCESS SHARE on the tables of the data-only streams in the snapshot's own
    transaction (as ``pg_dump -j``'s leader does), so none is dropped or rewritten between
    the snapshot and the stream that dumps it."""
    if not plan.moved:
        return
    names = sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in plan.moved)
    db.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(names))


@dataclass(frozen=True)
class _Stream:
    key: str
    section: str
    tables: tuple[TableSize, ...]
    argv: list[str]
    expected: int


class _Totals:
    """Sums the ``(read, stored)`` progress of every stream into one :data:`StreamProgress`."""

    def __init__(self, progress: StreamProgress, streams: int) -> None:
        self._progress, self._lock = progress, threading.Lock()
        self._each = [(0, 0)] * streams

    def for_stream(self, index: int) -> StreamProgress:
        def report(read: int, stored: int) -> None:
            with self._lock:
                self._each[index] = (read, stored)
                read_all = sum(r for r, _ in self._each)
                stored_all = sum(s for _, s in self._each)
            self._progress(read_all, stored_all)
        return report


class ParallelDump:
    """Runs the streams of one :class:`DumpPlan` at once into their objects.

    :param storage: where the objects go
    :param compression: zstd settings; its threads are shared out between the streams
        (:func:`share_threads`)
    :param checksum: sha256 of each object's stored bytes
    :param keys: encrypts each object with a data key of its own when encryption is on
    :param progress: hears the bytes read and stored by all streams together
    """

    def __init__(self, storage: Storage, compression: Compression, checksum: bool,
                 keys: KeyService | None, progress: StreamProgress | None) -> None:
        self.storage, self.compression, self.checksum = storage, compression, checksum
        self.keys, self.progress = keys, progress
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def streams(self, plan: DumpPlan, base_argv: list[str], folder: str) -> list[_Stream]:
        """The ``pg_dump`` command and object key of each stream of ``plan``."""
        compressed = self.compression.enabled
        first = base_argv + [f"--exclude-table-data={t.pattern}" for t in plan.moved]
        found = [_Stream(layout.dump_key(folder, compressed), SECTION_ALL, plan.groups[0],
                         first, plan.group_bytes(0))]
        for index, group in enumerate(plan.groups[1:], start=1):
            argv = base_argv + ["--data-only", "--strict-names"]
            argv += [f"--table={t.pattern}" for t in group]
            found.append(_Stream(layout.part_key(folder, index, compressed), SECTION_DATA,
                                 group, argv, plan.group_bytes(index)))
        return found

    def run(self, streams: list[_Stream], env: dict[str, str], backup_id: str
            ) -> list[DumpPart]:
        """Run every stream at once; all their parts, or the first failure raised with
        everything this run stored removed (the other streams are stopped at once)."""
        totals = _Totals(self.progress, len(streams)) if self.progress else None
        compression = share_threads(self.compression, len(streams))
        failures: list[BaseException] = []
        with ThreadPoolExecutor(len(streams), thread_name_prefix="pg_dump") as pool:
            futures = [pool.submit(self._one, s, env, backup_id, compression,
                                   totals.for_stream(i) if totals else None, failures)
                       for i, s in enumerate(streams)]
            try:
                wait(futures)
            except BaseException as exc:  # SIGTERM, Ctrl-C in the waiting thread
                self._stop(failures, exc)
                wait(futures)
                self._remove(futures)
                raise
        if failures:
            self._remove(futures)
            raise failures[0]
        return [f.result() for f in futures]

    def _one(self, stream: _Stream, env: dict[str, str], backup_id: str,
             compression: Compression, progress: StreamProgress | None,
             failures: list[BaseException]) -> DumpPart:
        seal = seal_for(self.keys, backup_identity(backup_id, stream.key))
        try:
            with self.storage.open_writer(stream.key, expected_size=stream.expected) as writer:
                result = stream_command(stream.argv, env, writer, compression, self.checksum,
                                        seal, progress, self._started)
        except BaseException as exc:
            self._stop(failures, exc)
            raise
        log.info("stored %s: %d raw bytes -> %d stored bytes (%d tables' data)",
                 self.storage.uri(stream.key), result.raw_bytes, result.stored_bytes,
                 len(stream.tables))
        return DumpPart(key=stream.key, section=stream.section,
                        tables=tuple(t.label for t in stream.tables), sha256=result.sha256,
                        stored_bytes=result.stored_bytes, raw_bytes=result.raw_bytes,
                        encryption=seal.record() if seal else None)

    def _started(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.append(proc)
            if self._stopping.is_set():
                proc.kill()

    def _stop(self, failures: list[BaseException], exc: BaseException) -> None:
        """The first failure is the one raised; every other stream's pg_dump is killed."""
        with self._lock:
            if not self._stopping.is_set():
                failures.append(exc)
            self._stopping.set()
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()

    def _remove(self, futures: list[Future[DumpPart]]) -> None:
        """Delete the objects of the streams that finished before another one failed."""
        done = [f.result().key for f in futures if f.done() and f.exception() is None]
        if done:
            self.storage.delete(done)
