"""The backup catalog: ``backup_records`` in a PostgreSQL database, rebuildable from storage."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from amprenta_backup.core.catalog.migrations import migrate
from amprenta_backup.core.catalog.rebuild import (
    RebuildReport,
    rebuild_from_storage,
    record_from_manifest,
    stored_manifests,
)
from amprenta_backup.core.errors import CatalogError, first_line
from amprenta_backup.core.models import BackupRecord, Manifest, RunContext, Status, utcnow
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.records.clock import ClockReading
from amprenta_backup.core.storage.base import Storage

__all__ = ["MAINTENANCE_DB", "Catalog", "RebuildReport", "forget_ready", "record_from_manifest",
           "stored_manifests"]

log = logging.getLogger(__name__)

MAINTENANCE_DB = "postgres"
_READY: dict[tuple[str, int, str], int] = {}  # schema version of the catalogs made ready here


def forget_ready() -> None:
    """Forget which catalogs this process brought up to date: each is checked again on its
    next use (a catalog database dropped and made again, a test acting as a new process)."""
    _READY.clear()

_UPSERT = """
INSERT INTO backup_records (id, target, database_name, kind, status, location, file_size_bytes,
    raw_size_bytes, sha256, error, started_at, completed_at, dag_id, run_id, logical_date,
    try_number, manifest, created_at, heartbeat_at)
VALUES (%(id)s, %(target)s, %(database_name)s, %(kind)s, %(status)s, %(location)s,
    %(file_size_bytes)s, %(raw_size_bytes)s, %(sha256)s, %(error)s, %(started_at)s,
    %(completed_at)s, %(dag_id)s, %(run_id)s, %(logical_date)s, %(try_number)s, %(manifest)s,
    %(started_at)s, CASE WHEN %(status)s = 'running' THEN now() END)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, location = EXCLUDED.location,
    file_size_bytes = EXCLUDED.file_size_bytes, raw_size_bytes = EXCLUDED.raw_size_bytes,
    sha256 = EXCLUDED.sha256, error = EXCLUDED.error, started_at = EXCLUDED.started_at,
    completed_at = EXCLUDED.completed_at, run_id = EXCLUDED.run_id,
    try_number = EXCLUDED.try_number, manifest = EXCLUDED.manifest, updated_at = now(),
    heartbeat_at = CASE WHEN EXCLUDED.status = 'running' THEN now()
                        ELSE backup_records.heartbeat_at END
"""


class Catalog:
    """Index of backups for queries and dashboards; storage stays the source of truth.

    :param conn: where the catalog database is
    """

    writable = True  # records what it is told (the storage-backed index does not)
    _held: Any = None  # held(): the connection kept, whether one is, by which thread
    _holding = False
    _holder = 0
    _busy = False

    def __init__(self, conn: PgConnInfo, pool_size: int = 0) -> None:
        """:param pool_size: keep up to this many connections open and reuse them (a
            long-running server: the plugin app); 0 connects anew for each transaction"""
        self.conn = conn
        self.pool_size = pool_size
        self._pool: Any = None
        self._skew_logged = False
        self._skew = timedelta(0)

    @property
    def _key(self) -> tuple[str, int, str]:
        return (self.conn.host, self.conn.port, self.conn.dbname)

    def ensure(self) -> int:
        """Bring the catalog's tables up to date (:mod:`~amprenta_backup.core.catalog.migrations`),
        once per process and database; returns the schema version. Every other method calls
        it first, so callers need not."""
        key = self._key
        if key not in _READY:
            with self._connect() as db:
                _, version = migrate(db)
            _READY[key] = version  # only once the steps have been committed
        return _READY[key]

    def describe(self) -> str:
        """Where the records are, safe to print."""
        return f"the catalog database {self.conn.describe()}"

    def probe(self) -> None:
        """Reach the catalog database (creating its tables once); CatalogError if it cannot."""
        with self._cursor() as cur:
            cur.execute("SELECT 1")

    def server_reachable(self) -> bool:
        """Whether the catalog's server answers on its maintenance database ``postgres``."""
        try:
            with psycopg.connect(**self.conn.with_database(MAINTENANCE_DB).connect_kwargs()):
                return True
        except psycopg.Error:
            return False

    def clock(self) -> ClockReading:
        """The catalog server's time, with this worker's read at the same moment."""
        with self._cursor() as cur:
            before = utcnow()
            cur.execute("SELECT clock_timestamp() AS now")
            after = utcnow()
            row = cur.fetchone()
        assert row is not None
        return ClockReading(server=row["now"], local=before + (after - before) / 2)

    def now(self) -> datetime:
        """The catalog server's time: the one clock that backup times and retention use
        (a worker's own clock may be far off; that is logged once per catalog object)."""
        reading = self.clock()
        self._skew = reading.skew
        if reading.off() and not self._skew_logged:
            log.warning("%s", reading.describe())
            self._skew_logged = True
        return reading.server

    def now_or_estimate(self) -> datetime:
        """:meth:`now`, or, if the catalog cannot be reached right now, this worker's clock
        corrected by the skew last read (for times written while the catalog may be down)."""
        try:
            return self.now()
        except CatalogError as exc:
            log.warning("the catalog's clock cannot be read (%s); using this worker's, "
                        "corrected by %s", exc, self._skew)
            return utcnow() - self._skew

    def create_database(self) -> bool:
        """Create the catalog's database on its server if missing (through the maintenance
        database ``postgres``); True if it was created. CatalogError if that cannot be done."""
        name = self.conn.dbname
        server = self.conn.with_database(MAINTENANCE_DB)
        try:
            with psycopg.connect(**server.connect_kwargs(), autocommit=True) as db:
                if db.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (name,)).fetchone():
                    return False
                db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False  # created by a concurrent run a moment ago
        except psycopg.Error as exc:
            detail = self.conn.redact(first_line(exc))
            raise CatalogError(
                f"cannot create the catalog database {name!r} on {server.describe()}: {detail}; "
                f"create it there (CREATE DATABASE {sql.Identifier(name).as_string(None)}) or "
                "point BACKUP_CATALOG_CONN_ID at a database that exists") from None
        log.info("created the catalog database %s on %s", name, server.describe())
        return True

    @contextmanager
    def held(self) -> Iterator[None]:
        """Inside the block, this thread's calls share one connection (a backup's few records
        and clock reads: one session instead of one per call, 10-20 ms each). Each call is
        still its own transaction; a connection found dead is replaced, so a catalog restarted
        meanwhile is reached again, and one that fails a call is dropped."""
        if self.pool_size or self._holding:
            yield
            return
        self._holding, self._holder, self._busy = True, threading.get_ident(), False
        try:
            yield
        finally:
            self._holding = False
            if self._held is not None:
                self._held.close()
                self._held = None

    @contextmanager
    def _reused(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """The held connection (checked alive with one round trip), committed after use."""
        self._busy = True
        try:
            db = self._held
            if db is not None:
                try:
                    db.execute("SELECT 1")
                except psycopg.Error:
                    db.close()
                    db = self._held = None
            if db is None:
                db = self._held = psycopg.connect(**self.conn.connect_kwargs(),
                                                  row_factory=dict_row)
            try:
                yield db
                db.commit()
            except BaseException:
                db.close()
                self._held = None
                raise
        finally:
            self._busy = False

    def _connection(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        if self._holding and not self._busy and threading.get_ident() == self._holder:
            return self._reused()
        if not self.pool_size:
            return psycopg.connect(**self.conn.connect_kwargs(), row_factory=dict_row)
        if self._pool is None:
            from psycopg_pool import ConnectionPool

            self._pool = ConnectionPool(kwargs={**self.conn.connect_kwargs(),
                                                "row_factory": dict_row},
                                        min_size=1, max_size=self.pool_size, open=True)
        return self._pool.connection()  # type: ignore[no-any-return]

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        try:
            with self._connection() as db:
                yield db
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.errors.UndefinedTable):
                _READY.pop(self._key, None)  # the database was made again: migrate next time
            detail = self.conn.redact(first_line(exc))
            raise CatalogError(
                f"backup catalog at {self.conn.describe()} failed: {detail}; check the catalog "
                "connection (BACKUP_CATALOG_CONN_ID)"
            ) from None

    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        with self._connect() as db:
            key = self._key
            if key not in _READY:  # first use here: checked on this connection, not one more
                _, version = migrate(db)
                db.commit()
                _READY[key] = version
            with db.cursor() as cur:
                yield cur

    def cursor(self) -> AbstractContextManager[psycopg.Cursor[dict[str, Any]]]:
        """One transaction on the catalog database, for modules that keep their own tables
        beside ``backup_records``; errors become :class:`CatalogError`."""
        return self._cursor()

    def upsert(self, table: str, row: dict[str, Any]) -> None:
        """Insert ``row`` (column -> value) into ``table``, or replace the row with its ``id``
        and stamp ``updated_at``. ``table`` and the column names are the code's own, never
        user input."""
        names = list(row)
        insert = (f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                  f"({', '.join(f'%({n})s' for n in names)}) ON CONFLICT (id) DO UPDATE SET "
                  + ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n != "id")
                  + ", updated_at = now()")
        with self._cursor() as cur:
            cur.execute(insert.encode(), row)

    def set_status(self, backup_id: str, status: Status, error: str | None = None) -> bool:
        """Set a record's status and error (``None`` clears it); False if there is no record."""
        with self._cursor() as cur:
            # never over a deleted or unfinished backup (a verify racing a cleanup, say)
            cur.execute("UPDATE backup_records SET status = %s, error = %s, updated_at = now() "
                        "WHERE id = %s AND status IN ('completed', 'verified', 'corrupt')",
                        (str(status), error, backup_id))
            return cur.rowcount == 1

    def save(self, record: BackupRecord) -> None:
        """Insert or update one record."""
        with self._cursor() as cur:
            cur.execute(_UPSERT, _to_row(record))

    def get(self, backup_id: str) -> BackupRecord | None:
        with self._cursor() as cur:
            cur.execute("SELECT * FROM backup_records WHERE id = %s", (backup_id,))
            row = cur.fetchone()
        return _from_row(row) if row else None

    def find(
        self,
        target: str | None = None,
        statuses: Iterable[Status] | None = None,
        limit: int | None = None,
        before: datetime | None = None,
        started_after: datetime | None = None,
    ) -> list[BackupRecord]:
        """Records, newest first, filtered by target, status and start time
        (``started_after <= started_at < before``)."""
        clauses: list[str] = ["TRUE"]
        params: list[object] = []
        if target is not None:
            clauses.append("target = %s")
            params.append(target)
        if statuses is not None:
            clauses.append("status = ANY(%s)")
            params.append([str(s) for s in statuses])
        if before is not None:
            clauses.append("started_at < %s")
            params.append(before)
        if started_after is not None:
            clauses.append("started_at >= %s")
            params.append(started_after)
        sql = f"SELECT * FROM backup_records WHERE {' AND '.join(clauses)} ORDER BY started_at DESC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(int(limit))
        with self._cursor() as cur:
            cur.execute(sql.encode(), params)
            return [_from_row(row) for row in cur.fetchall()]

    def rebuild(self, storage: Storage, prefix: str = "") -> int:
        """Re-create records from the manifests in storage; returns how many (see
        :meth:`rebuild_report` for what was skipped and why)."""
        return self.rebuild_report(storage, prefix).rebuilt

    def rebuild_report(self, storage: Storage, prefix: str = "") -> RebuildReport:
        """Re-create records from every valid ``manifest.json`` in storage (what is checked,
        skipped and why: :func:`~amprenta_backup.core.catalog.rebuild.rebuild_from_storage`)."""
        return rebuild_from_storage(self, storage, prefix)



def _to_row(record: BackupRecord) -> dict[str, Any]:
    return {
        "id": record.backup_id, "target": record.target, "database_name": record.database,
        "kind": record.kind, "status": str(record.status), "location": record.location,
        "file_size_bytes": record.stored_bytes, "raw_size_bytes": record.raw_bytes,
        "sha256": record.sha256, "error": record.error, "started_at": record.started_at,
        "completed_at": record.completed_at, "dag_id": record.run.dag_id,
        "run_id": record.run.run_id, "logical_date": record.run.logical_date,
        "try_number": record.run.try_number,
        "manifest": json.dumps(record.manifest.to_dict()) if record.manifest else None,
    }


def _from_row(row: dict[str, Any]) -> BackupRecord:
    manifest = Manifest.from_json(json.dumps(row["manifest"])) if row["manifest"] else None
    return BackupRecord(
        backup_id=row["id"], target=row["target"], status=Status(row["status"]),
        location=row["location"], started_at=row["started_at"], database=row["database_name"],
        kind=row["kind"], completed_at=row["completed_at"], stored_bytes=row["file_size_bytes"],
        raw_bytes=row["raw_size_bytes"], sha256=row["sha256"], error=row["error"],
        run=RunContext(dag_id=row["dag_id"], run_id=row["run_id"],
                       logical_date=row["logical_date"], try_number=row["try_number"]),
        manifest=manifest,
    )
