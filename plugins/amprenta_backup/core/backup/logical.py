"""One logical backup of one database, from RUNNING to COMPLETED or FAILED."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import psycopg
from psycopg import sql

from amprenta_backup.core import layout
from amprenta_backup.core.backup.globals import GlobalsCapture
from amprenta_backup.core.backup.lifecycle import Lifecycle, recorded
from amprenta_backup.core.catalog import Catalog, record_from_manifest
from amprenta_backup.core.dbprops import read_properties
from amprenta_backup.core.errors import DumpError, StorageError
from amprenta_backup.core.models import (
    RESTORABLE,
    BackupRecord,
    Manifest,
    RunContext,
    Status,
    utcnow,
)
from amprenta_backup.core.pgtools import (
    PgConnInfo,
    PgInstall,
    for_server,
    pg_dump_argv,
    server_major,
)
from amprenta_backup.core.pipeline import Compression, StreamResult, stream_command
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage.base import Storage

log = logging.getLogger(__name__)

USER_TABLES = """
SELECT format('%I.%I', n.nspname, c.relname), n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1
"""


def count_rows(db: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    """Exact row count of every user table (and partition), keyed ``schema.table``."""
    counts: dict[str, int] = {}
    for qualified, schema, table in db.execute(USER_TABLES).fetchall():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(str(schema)), sql.Identifier(str(table)))
        row = db.execute(query).fetchone()
        counts[str(qualified)] = int(str(row[0])) if row else 0
    return counts


@dataclass(frozen=True)
class BackupSettings:
    """How backups are written.

    :param prefix: key prefix of everything stored
    :param compression: zstd settings
    :param checksum: compute sha256 over the stored bytes
    """

    prefix: str
    compression: Compression
    checksum: bool = True

    @classmethod
    def from_config(cls, config: BackupConfig) -> BackupSettings:
        compression = Compression(enabled=config.compression_enabled,
                                  level=config.compression_level,
                                  threads=config.compression_threads)
        return cls(prefix=config.prefix, compression=compression,
                   checksum=config.checksum_enabled)


class _RowCounter(threading.Thread):
    """Counts rows inside the exported snapshot while pg_dump streams."""

    def __init__(self, db: psycopg.Connection[tuple[object, ...]]) -> None:
        super().__init__(daemon=True, name="row-counter")
        self._db = db
        self.counts: dict[str, int] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.counts = count_rows(self._db)
        except BaseException as exc:  # reported by the caller
            self.error = exc


class BackupRunner:
    """Runs backups into one storage and records them in one catalog.

    :param storage: where the dump and manifest go
    :param catalog: where the record goes
    :param settings: prefix, compression, checksum
    """

    def __init__(self, storage: Storage, catalog: Catalog, settings: BackupSettings) -> None:
        self.storage = storage
        self.catalog = catalog
        self.settings = settings

    def run(self, target: str, conn: PgConnInfo, run: RunContext, backup_id: str) -> Manifest:
        """Back up ``conn``'s database as ``target``; idempotent for a given ``backup_id``.

        A backup that already completed under ``backup_id`` is returned as it is.
        """
        folder = layout.backup_folder(self.settings.prefix, target, backup_id)
        done = self._already_completed(backup_id, folder)
        if done is not None:
            log.info("backup %s of %s already completed; nothing to do", backup_id, target)
            return done
        self.storage.check_ready()
        record = BackupRecord(backup_id=backup_id, target=target, status=Status.RUNNING,
                              location=self.storage.uri(folder), started_at=utcnow(),
                              database=conn.dbname, run=run)
        with recorded(self.catalog, record, redact=conn.redact) as life:
            manifest = self._backup(target, conn, run, backup_id, folder, life)
            life.complete(manifest)
        return manifest

    def _already_completed(self, backup_id: str, folder: str) -> Manifest | None:
        """The manifest of a backup that finished under ``backup_id``, if storage has one.

        Storage is the source of truth: a manifest there means the backup completed even if
        the catalog missed it (e.g. the catalog was down when the record was saved); the
        record is repaired instead of dumping again over the finished backup.
        """
        manifest_key = layout.manifest_key(folder)
        if not self.storage.exists(manifest_key):
            return None
        manifest = Manifest.from_json(self.storage.get_bytes(manifest_key))
        existing = self.catalog.get(backup_id)
        if existing is None or existing.status not in (*RESTORABLE, Status.CORRUPT):
            self.catalog.save(record_from_manifest(manifest, self.storage.uri(folder),
                                                   Status.COMPLETED))
        return manifest

    def _backup(self, target: str, conn: PgConnInfo, run: RunContext, backup_id: str,
                folder: str, life: Lifecycle) -> Manifest:
        with psycopg.connect(**conn.connect_kwargs()) as db:
            life.step = "preflight"
            db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = str(_scalar(db, "SELECT pg_export_snapshot()"))
            server_version = str(_scalar(db, "SHOW server_version"))
            size = int(str(_scalar(db, "SELECT pg_database_size(current_database())")))
            pg_dump = for_server("pg_dump", server_major(db))
            life.step = "properties"
            properties = read_properties(db)
            counter = _RowCounter(db)
            counter.start()
            life.step = "dump"
            try:
                result = self._stream_dump(conn, snapshot, folder, size, pg_dump)
            except StorageError:
                life.step = "upload"  # the dump streamed, storage did not take it
                raise
            life.step = "count rows"
            counter.join()
            if counter.error is not None:
                raise counter.error
        life.step = "globals"  # after the dump: a failed dump leaves no globals behind
        globals_ref = GlobalsCapture(self.storage, self.settings).ensure(conn, run, backup_id)
        life.step = "manifest"
        manifest = Manifest(
            backup_id=backup_id, target=target, database=conn.dbname, kind="logical",
            key=layout.dump_key(folder, self.settings.compression.enabled),
            format="pg_dump-custom", compression=self.settings.compression.name,
            stored_bytes=result.stored_bytes, raw_bytes=result.raw_bytes,
            sha256=result.sha256, started_at=life.record.started_at, completed_at=utcnow(),
            server_version=server_version, pg_dump_version=pg_dump.version,
            table_counts=counter.counts, run=run, globals=globals_ref.to_dict(),
            properties=properties.to_dict(),
        )
        self.storage.put_bytes(layout.manifest_key(folder), manifest.to_json())
        return manifest

    def _stream_dump(self, conn: PgConnInfo, snapshot: str, folder: str,
                     database_size: int, pg_dump: PgInstall) -> StreamResult:
        """pg_dump into the dump object; the database's size sizes the upload's parts."""
        key = layout.dump_key(folder, self.settings.compression.enabled)
        argv = pg_dump_argv(snapshot=snapshot, binary=pg_dump.path("pg_dump"))
        log.info("pg_dump %s for server %s", pg_dump.describe(), conn.describe())
        with self.storage.open_writer(key, expected_size=database_size) as writer:
            result = stream_command(argv, conn.env(), writer,
                                    self.settings.compression, self.settings.checksum)
        log.info("stored %s: %d raw bytes -> %d stored bytes", self.storage.uri(key),
                 result.raw_bytes, result.stored_bytes)
        return result


def _scalar(db: psycopg.Connection[tuple[object, ...]], query: str) -> object:
    row = db.execute(query.encode()).fetchone()
    return row[0] if row else None




__all__ = ["BackupRunner", "BackupSettings", "DumpError", "count_rows"]
