"""One logical backup of one database, from RUNNING to COMPLETED or FAILED."""

from __future__ import annotations

import logging
from concurrent.futures import wait
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from amprenta_backup.core import layout
from amprenta_backup.core.backup.admission import (
    Admission,
    AlreadyCompleted,
    HeldWriter,
    stop_tool,
)
from amprenta_backup.core.backup.globals import GlobalsCapture
from amprenta_backup.core.backup.lifecycle import Lifecycle, recorded
from amprenta_backup.core.backup.parallel import (
    PARALLEL_FORMAT,
    SECTION_ALL,
    DumpPlan,
    ParallelDump,
    lock_moved,
    plan_dump,
    read_tables,
    resolve_jobs,
)
from amprenta_backup.core.backup.rowcount import RowCounter
from amprenta_backup.core.catalog import Catalog, record_from_manifest
from amprenta_backup.core.constants import (
    DEFAULT_DUMP_MIN_TABLE_MB,
    MANIFEST_VERSION,
    PARALLEL_MANIFEST_VERSION,
)
from amprenta_backup.core.dbprops import read_properties
from amprenta_backup.core.encryption import KeyService, backup_identity, seal_for
from amprenta_backup.core.errors import DumpError, StorageError
from amprenta_backup.core.models import (
    RESTORABLE,
    BackupRecord,
    DumpPart,
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
    terminate_session,
)
from amprenta_backup.core.pipeline import Compression, StreamProgress, stream_command
from amprenta_backup.core.records.heartbeat import DEFAULT_TIMEOUT, RunGuard, sweep_quietly
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.storage.multipart import run_in_thread

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class BackupSettings:
    """How backups are written.

    :param prefix: key prefix of everything stored
    :param compression: zstd settings
    :param checksum: compute sha256 over the stored bytes
    :param heartbeat_timeout: a RUNNING backup silent this long is abandoned
    :param keys: encrypts dumps and globals when encryption is on
    :param dump_jobs: dump streams at once when the database has sizeable tables (``0``: two
        per core, see core/backup/parallel.py; ``1``: one stream)
    :param min_table_bytes: the size from which a table may get a stream of its own
    """

    prefix: str
    compression: Compression
    checksum: bool = True
    heartbeat_timeout: timedelta = DEFAULT_TIMEOUT
    keys: KeyService | None = None
    dump_jobs: int = 0
    min_table_bytes: int = DEFAULT_DUMP_MIN_TABLE_MB * 2**20

    @classmethod
    def from_config(cls, config: BackupConfig, keys: KeyService | None = None
                    ) -> BackupSettings:
        compression = Compression(enabled=config.compression_enabled,
                                  level=config.compression_level,
                                  threads=config.compression_threads)
        return cls(prefix=config.prefix, compression=compression,
                   checksum=config.checksum_enabled,
                   heartbeat_timeout=timedelta(seconds=config.heartbeat_timeout_seconds),
                   keys=keys, dump_jobs=config.dump_jobs,
                   min_table_bytes=config.dump_min_table_mb * 2**20)


class BackupRunner:
    """Runs backups into one storage and records them in one catalog.

    :param storage: where the dump and manifest go
    :param catalog: where the record goes
    :param settings: prefix, compression, checksum
    :param progress: hears ``(read, stored)`` bytes as a dump streams (a log line every so
        often in Airflow, a progress bar at a terminal); set it on the runner the engine gives
    """

    def __init__(self, storage: Storage, catalog: Catalog, settings: BackupSettings,
                 progress: StreamProgress | None = None) -> None:
        self.storage = storage
        self.catalog = catalog
        self.settings = settings
        self.progress = progress

    def run(self, target: str, conn: PgConnInfo, run: RunContext, backup_id: str) -> Manifest:
        """Back up ``conn``'s database as ``target``; idempotent for a given ``backup_id``.

        A backup that already completed under ``backup_id`` is returned as it is. One run per
        ``backup_id`` at a time (a second one is refused); backups of ``target`` abandoned by
        a process that died are marked FAILED and their partial objects removed first.
        """
        with self.catalog.held(), RunGuard(self.catalog, backup_id,
                                           self.settings.heartbeat_timeout):
            return self._run(target, conn, run, backup_id)

    def _run(self, target: str, conn: PgConnInfo, run: RunContext, backup_id: str) -> Manifest:
        """The sweep, storage's checks and the RUNNING record happen in a thread while the
        source is prepared and the dump starts (core/backup/admission.py)."""
        folder = layout.backup_folder(self.settings.prefix, target, backup_id)
        if self.settings.keys is not None:  # a key that cannot seal fails here, not mid-dump
            self.settings.keys.check_ready(f"backup {backup_id} of {target!r}")
        record = BackupRecord(backup_id=backup_id, target=target, status=Status.RUNNING,
                              location=self.storage.uri(folder), started_at=utcnow(),
                              database=conn.dbname, run=run)
        admission = Admission(self.storage, self.catalog, folder, record, before=lambda: (
            sweep_quietly(self.storage, self.catalog, self.settings.prefix,
                          self.settings.heartbeat_timeout, target, backup_id)))
        admission.start()
        try:
            with recorded(self.catalog, record, redact=conn.redact,
                          saved=admission.wait) as life:
                manifest = self._backup(target, conn, run, backup_id, folder, life, admission)
                life.complete(manifest)
        except AlreadyCompleted as done:
            log.info("backup %s of %s already completed; nothing to do", backup_id, target)
            return self._repair_record(done.manifest, folder)
        return manifest

    def _repair_record(self, manifest: Manifest, folder: str) -> Manifest:
        """The manifest of a backup that finished under its id, its record repaired.

        Storage is the source of truth: a manifest there means the backup completed even if
        the catalog missed it (e.g. the catalog was down when the record was saved); the
        record is repaired instead of dumping again over the finished backup.
        """
        existing = self.catalog.get(manifest.backup_id)
        if existing is None or existing.status not in (*RESTORABLE, Status.CORRUPT):
            self.catalog.save(record_from_manifest(manifest, self.storage.uri(folder),
                                                   Status.COMPLETED))
        return manifest

    def _backup(self, target: str, conn: PgConnInfo, run: RunContext, backup_id: str,
                folder: str, life: Lifecycle, admission: Admission) -> Manifest:
        with psycopg.connect(**conn.connect_kwargs()) as db:
            pid = db.info.backend_pid  # if refused, its query (waiting on a lock, say) ends
            admission.stop_with(lambda: None if db.closed else terminate_session(conn, pid))
            life.step = "preflight"
            # on psycopg's own BEGIN: an explicit BEGIN after it drew a WARNING per backup
            db.isolation_level, db.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
            snapshot = str(_scalar(db, "SELECT pg_export_snapshot()"))
            server_version = str(_scalar(db, "SHOW server_version"))
            size = int(str(_scalar(db, "SELECT pg_database_size(current_database())")))
            pg_dump = for_server("pg_dump", server_major(db))
            # read in the snapshot while the dump streams (psycopg serializes the connection)
            properties = run_in_thread(lambda: read_properties(db), "properties")
            plan = self._plan(db)
            counter = RowCounter(conn, snapshot)
            admission.stop_with(counter.stop)
            counter.start()
            capture = GlobalsCapture(self.storage, self.settings)  # read while the dump streams
            taken = run_in_thread(lambda: capture.take(conn, run, backup_id), "globals")
            life.step = "dump"
            try:
                if plan.parallel:
                    admission.wait()  # several streams start once the backup is recorded
                    parts = self._parallel_dump(db, plan, conn, snapshot, backup_id, folder,
                                                pg_dump)
                else:
                    parts = [self._stream_dump(conn, snapshot, backup_id, folder, size, pg_dump,
                                               admission)]
            except StorageError:
                life.step = "upload"  # the dump streamed, storage did not take it
                raise
            finally:  # the properties thread uses db: it ends before the connection closes
                wait([properties])
            life.step = "properties"
            props = properties.result()
            life.step = "count rows"
            counter.join()
            if counter.error is not None:
                raise counter.error
            life.step = "globals"  # stored after the dump: a failed dump leaves none behind
            globals_ref = capture.store(db, taken.result())
        life.step = "manifest"
        first = parts[0]
        manifest = Manifest(
            backup_id=backup_id, target=target, database=conn.dbname, kind="logical",
            key=first.key, format=PARALLEL_FORMAT if len(parts) > 1 else "pg_dump-custom",
            compression=self.settings.compression.name,
            stored_bytes=sum(p.stored_bytes for p in parts),
            raw_bytes=sum(p.raw_bytes for p in parts),
            sha256=first.sha256, started_at=life.record.started_at,
            completed_at=self.catalog.now_or_estimate(),
            server_version=server_version, pg_dump_version=pg_dump.version,
            table_counts=counter.counts, run=run, globals=globals_ref.to_dict(),
            properties=props.to_dict(), encryption=first.encryption,
            parts=[p.to_dict() for p in parts] if len(parts) > 1 else None,
            version=PARALLEL_MANIFEST_VERSION if len(parts) > 1 else MANIFEST_VERSION,
        )
        self.storage.put_bytes(layout.manifest_key(folder), manifest.to_json())
        return manifest

    def _plan(self, db: psycopg.Connection[tuple[object, ...]]) -> DumpPlan:
        """How many streams to dump with: one unless ``dump_jobs`` allows more and the
        database has at least two sizeable tables."""
        jobs = resolve_jobs(self.settings.dump_jobs)
        if jobs < 2:
            return DumpPlan(groups=((),))
        return plan_dump(read_tables(db), jobs, self.settings.min_table_bytes)

    def _parallel_dump(self, db: psycopg.Connection[tuple[object, ...]], plan: DumpPlan,
                       conn: PgConnInfo, snapshot: str, backup_id: str, folder: str,
                       pg_dump: PgInstall) -> list[DumpPart]:
        """One pg_dump per group of tables, all on ``snapshot``, each into its object."""
        lock_moved(db, plan)
        dump = ParallelDump(self.storage, self.settings.compression, self.settings.checksum,
                            self.settings.keys, self.progress)
        streams = dump.streams(plan, pg_dump_argv(snapshot=snapshot,
                                                  binary=pg_dump.path("pg_dump")), folder)
        log.info("pg_dump %s for server %s: %d streams on snapshot %s (%s)", pg_dump.describe(),
                 conn.describe(), len(streams), snapshot,
                 "; ".join(f"{len(s.tables)} tables, {s.expected} bytes" for s in streams))
        return dump.run(streams, conn.env(), backup_id)

    def _stream_dump(self, conn: PgConnInfo, snapshot: str, backup_id: str, folder: str,
                     database_size: int, pg_dump: PgInstall, admission: Admission) -> DumpPart:
        """pg_dump into the dump object (encrypted when encryption is on); the database's size
        sizes the upload's parts. The first bytes are held until ``admission`` lets them in."""
        key = layout.dump_key(folder, self.settings.compression.enabled)
        seal = seal_for(self.settings.keys, backup_identity(backup_id, key))
        argv = pg_dump_argv(snapshot=snapshot, binary=pg_dump.path("pg_dump"))
        log.info("pg_dump %s for server %s", pg_dump.describe(), conn.describe())
        held = HeldWriter(admission, lambda: self.storage.open_writer(
            key, expected_size=database_size))
        with held as writer:
            result = stream_command(argv, conn.env(), writer, self.settings.compression,
                                    self.settings.checksum, seal, self.progress,
                                    started=lambda proc: admission.stop_with(stop_tool(proc)))
        log.info("stored %s: %d raw bytes -> %d stored bytes%s", self.storage.uri(key),
                 result.raw_bytes, result.stored_bytes,
                 f", encrypted with key {seal.envelope.key_id}" if seal else "")
        return DumpPart(key=key, section=SECTION_ALL, tables=(), sha256=result.sha256,
                        stored_bytes=result.stored_bytes, raw_bytes=result.raw_bytes,
                        encryption=seal.record() if seal else None)


def _scalar(db: psycopg.Connection[tuple[object, ...]], query: str) -> object:
    row = db.execute(query.encode()).fetchone()
    return row[0] if row else None




__all__ = ["BackupRunner", "BackupSettings", "DumpError"]
