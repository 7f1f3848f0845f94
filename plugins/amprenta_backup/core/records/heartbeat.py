"""One run per backup id, and a heartbeat that tells a running backup from an abandoned one.

:class:`RunGuard` holds, for the whole run, a catalog connection with a session advisory lock
keyed by the backup id (a second run of the same id is refused; the lock goes with the
connection when the process dies, however it dies) and, from a small thread, writes the
record's ``heartbeat_at`` with the catalog server's ``now()`` every few seconds.

A RUNNING record whose heartbeat is older than the limit belongs to a process that was killed
(SIGKILL, OOM, a lost host): :func:`sweep_abandoned` marks it FAILED ("abandoned: no heartbeat
since ...") and removes what it left in storage (a local ``.partial`` file, an S3 multipart
upload, a dump without manifest). A backup stored and waiting for its WAL (a base backup)
writes no heartbeat meanwhile and is given :data:`WAITING_GRACE` more.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import psycopg

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog, record_from_manifest
from amprenta_backup.core.errors import (
    BackupError,
    CatalogUnavailable,
    ObjectLocked,
    PreconditionError,
    first_line,
)
from amprenta_backup.core.models import Status
from amprenta_backup.core.records.manifests import stored_manifest
from amprenta_backup.core.storage.base import Storage

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(seconds=600)
WAITING_GRACE = timedelta(days=1)  # stored, waiting for WAL: longer than any archive wait

_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('amprenta-backup:' || %s, 0))"  # = below
_BEAT = ("UPDATE backup_records SET heartbeat_at = now() "
         "WHERE id = %s AND status = 'running'")
# a stale heartbeat is not enough: the run's lock must be free too (its process is gone);
# the transaction-level lock taken here keeps a new run of that id out until the sweep commits
_ABANDONED = """
SELECT id, target, location, coalesce(heartbeat_at, started_at) AS last_beat,
    coalesce(%(now)s, now()) AS now
FROM backup_records
WHERE status = 'running' AND (%(target)s::text IS NULL OR target = %(target)s)
  AND (id = %(own)s OR (coalesce(heartbeat_at, started_at) < coalesce(%(now)s, now()) - CASE
      WHEN manifest IS NULL
      THEN %(timeout)s ELSE %(timeout)s + %(grace)s END
      AND pg_try_advisory_xact_lock(hashtextextended('amprenta-backup:' || id, 0))))
ORDER BY started_at
"""
_MARK_FAILED = """
UPDATE backup_records SET status = 'failed', error = %(error)s, completed_at = now(),
    updated_at = now()
WHERE id = %(id)s AND status = 'running' AND coalesce(heartbeat_at, started_at) = %(last_beat)s
"""


def beat_interval(timeout: timedelta) -> float:
    """Seconds between heartbeats: a quarter of the limit, at most 30 s."""
    return max(1.0, min(30.0, timeout.total_seconds() / 4))


class RunGuard:
    """The one run of ``backup_id``: the lock, then heartbeats until the run ends.

    :param catalog: the catalog holding the record
    :param backup_id: the backup this run writes
    :param timeout: the heartbeat limit (BACKUP_HEARTBEAT_TIMEOUT_SECONDS)
    """

    def __init__(self, catalog: Catalog, backup_id: str,
                 timeout: timedelta = DEFAULT_TIMEOUT) -> None:
        self.catalog = catalog
        self.backup_id = backup_id
        self.interval = beat_interval(timeout)
        self._db: psycopg.Connection[tuple[object, ...]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"heartbeat-{backup_id}")

    def __enter__(self) -> RunGuard:
        if not self.catalog.writable:
            return self  # nothing is recorded, so nothing to guard
        try:
            self._db = psycopg.connect(**self.catalog.conn.connect_kwargs(), autocommit=True)
            row = self._db.execute(_LOCK, (self.backup_id,)).fetchone()
        except psycopg.Error as exc:
            self._close()
            raise CatalogUnavailable(
                f"backup {self.backup_id} not started, nothing was written: the catalog at "
                f"{self.catalog.conn.describe()} cannot be reached "
                f"({self.catalog.conn.redact(first_line(exc))}); check the catalog connection "
                "(BACKUP_CATALOG_CONN_ID)") from None
        if not row or not row[0]:
            self._close()
            raise PreconditionError(
                f"backup {self.backup_id} is being written by another run right now (its "
                "catalog lock is held); this run was refused and changed nothing. Wait for "
                "that run to finish (`amprenta-backup show` tells its status)")
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._close()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                assert self._db is not None
                self._db.execute(_BEAT, (self.backup_id,))
            except (psycopg.Error, AssertionError) as exc:
                log.warning("heartbeat of backup %s not written: %s", self.backup_id,
                            self.catalog.conn.redact(first_line(exc) if isinstance(
                                exc, psycopg.Error) else "no connection"))

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()  # the advisory lock goes with the session
            self._db = None


@dataclass(frozen=True)
class Abandoned:
    """A RUNNING record without a recent heartbeat.

    :param backup_id: its id
    :param target: its target
    :param location: its folder's URI
    :param last_beat: its last heartbeat (or start, if it never beat)
    :param now: the catalog server's time when it was found
    """

    backup_id: str
    target: str
    location: str
    last_beat: datetime
    now: datetime

    @property
    def reason(self) -> str:
        silent = timedelta(seconds=round((self.now - self.last_beat).total_seconds()))
        return (f"abandoned: no heartbeat since {self.last_beat:%Y-%m-%d %H:%M:%S} UTC "
                f"({silent} ago); the process running it died (killed, out of memory, host "
                "lost)")


def find_abandoned(catalog: Catalog, timeout: timedelta = DEFAULT_TIMEOUT,
                   target: str | None = None, now: datetime | None = None) -> list[Abandoned]:
    """RUNNING records (of ``target``, or all) whose heartbeat is older than ``timeout`` at
    ``now`` (default: the catalog server's clock), and whose run lock is free."""
    if not catalog.writable:
        return []
    with catalog.cursor() as cur:
        return _select(cur, timeout, target, None, now)


def sweep_abandoned(storage: Storage, catalog: Catalog, prefix: str,
                    timeout: timedelta = DEFAULT_TIMEOUT, target: str | None = None,
                    own: str | None = None, now: datetime | None = None) -> list[Abandoned]:
    """Mark abandoned backups FAILED and remove their partial objects; returns them.

    :param own: the id this run holds the lock of: a RUNNING record of it was left by an
        earlier run that died, whatever its heartbeat says
    :param now: judge heartbeats as of this time (default: the catalog server's clock)
    A folder that holds a manifest finished after all (the catalog missed it): its record is
    repaired to COMPLETED instead.
    """
    if not catalog.writable:
        return []
    with catalog.cursor() as cur:
        found = _select(cur, timeout, target, own, now)
        for item in found:
            cur.execute(_MARK_FAILED, {"id": item.backup_id, "error": item.reason,
                                       "last_beat": item.last_beat})
    for item in found:
        folder = layout.backup_folder(prefix, item.target, item.backup_id)
        if storage.uri(folder) != item.location:
            log.warning("abandoned backup %s lives in %s, not in %s: its objects were left",
                        item.backup_id, item.location, storage.uri(folder))
            continue
        manifest = stored_manifest(storage, folder)
        if manifest is not None:
            catalog.save(record_from_manifest(manifest, item.location, Status.COMPLETED))
            log.warning("backup %s had stopped beating but its manifest is stored: recorded "
                        "COMPLETED", item.backup_id)
            continue
        _remove_partial(storage, folder)
        log.warning("backup %s of %s: %s; recorded FAILED and its partial objects removed",
                    item.backup_id, item.target, item.reason)
    return found


def sweep_quietly(storage: Storage, catalog: Catalog, prefix: str, timeout: timedelta,
                  target: str | None = None, own: str | None = None) -> list[Abandoned]:
    """:func:`sweep_abandoned`, logging instead of raising: a backup never fails for it."""
    try:
        return sweep_abandoned(storage, catalog, prefix, timeout, target, own)
    except BackupError as exc:
        log.warning("abandoned backups of %s not swept: %s", target or "every target", exc)
        return []


def _select(cur: psycopg.Cursor[dict[str, Any]], timeout: timedelta, target: str | None,
            own: str | None, now: datetime | None) -> list[Abandoned]:
    cur.execute(_ABANDONED, {"target": target, "timeout": timeout, "grace": WAITING_GRACE,
                             "own": own, "now": now})
    return [Abandoned(row["id"], row["target"], row["location"], row["last_beat"], row["now"])
            for row in cur.fetchall()]


def _remove_partial(storage: Storage, folder: str) -> None:
    for upload in storage.list_incomplete_uploads(folder + "/"):
        storage.abort_upload(upload)
    try:
        storage.delete([o.key for o in storage.list_objects(folder + "/")])
    except ObjectLocked as exc:  # FAILED now: the leftover sweep removes them after the date
        log.warning("partial objects of %s kept for now: %s", storage.uri(folder), exc)
