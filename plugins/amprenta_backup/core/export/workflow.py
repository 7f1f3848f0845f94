"""Project exports end to end: record, write, list, fetch and import (what the engine offers)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import psycopg

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.connections import Resolver
from amprenta_backup.core.errors import (
    BackupError,
    ChecksumMismatch,
    ConfigError,
    PreconditionError,
)
from amprenta_backup.core.export.archive import ExportArchive
from amprenta_backup.core.export.spec import ProjectSpec, project_spec
from amprenta_backup.core.export.store import (
    COMPLETED,
    FAILED,
    RUNNING,
    ExportRecord,
    ExportRecords,
    info_key,
    zip_key,
)
from amprenta_backup.core.export.writer import ExportRequest, ProjectExporter, info_json
from amprenta_backup.core.layout import check_backup_id, make_backup_id
from amprenta_backup.core.models import utcnow
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupConfig, StorageConfig
from amprenta_backup.core.settings.project import ProjectSettings
from amprenta_backup.core.storage.base import Storage

if TYPE_CHECKING:
    from datetime import datetime

    from amprenta_backup.core.export.load import ImportReport
    from amprenta_backup.core.export.retention import ExportCleanupReport

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


@dataclass
class ExportResult:
    """A finished export: its id, where the ZIP is, its sha256, size and rows."""

    export_id: str
    location: str
    sha256: str
    size_bytes: int
    rows: dict[str, int]
    files: int
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"export_id": self.export_id, "location": self.location, "sha256": self.sha256,
                "size_bytes": self.size_bytes, "row_count": sum(self.rows.values()),
                "rows": self.rows, "files": self.files, "seconds": self.seconds}


class ProjectExports:
    """Exports of the configured project, kept in ``storage`` and the catalog's ``exports``.

    :param spec: the configured project (None: exports can be listed and imported, not made)
    :param conn: the project database
    :param files: where the file columns' paths are read from: a storage and a key prefix
    """

    def __init__(self, storage: Storage, catalog: Catalog, prefix: str,
                 spec: ProjectSpec | None = None, conn: PgConnInfo | None = None,
                 files: tuple[Storage, str] | None = None, level: int = 1,
                 resolve: Resolver | None = None, default_conn_id: str | None = None) -> None:
        self.storage = storage
        self.resolve = resolve
        self.default_conn_id = default_conn_id
        self.records = ExportRecords(catalog)
        self.prefix = prefix
        self.spec = spec
        self.conn = conn
        self.files = files
        self.level = level

    @classmethod
    def configured(cls, storage: Storage, catalog: Catalog, config: BackupConfig,
                   resolve: Resolver, settings: ProjectSettings) -> ProjectExports:
        """The exports of the project ``settings`` configure (none: list and import only)."""
        default = config.targets[0].conn_id if config.targets else None
        if not (settings.root or settings.spec_file):
            return cls(storage, catalog, config.prefix, resolve=resolve,
                       default_conn_id=default)
        spec = project_spec(settings, config.targets)
        return cls(storage, catalog, config.prefix, spec,
                   resolve(spec.source.conn_id, spec.source.database),
                   files_source(spec.files_root, config.storage), settings.compression_level,
                   resolve, spec.source.conn_id)

    def import_into(self, source: Path | str, database: str, conn_id: str | None = None,
                    policy: str = "fail", dry_run: bool = False) -> ImportReport:
        """Import a ZIP, an unzipped folder or a stored export id into ``database`` on
        ``conn_id``'s server (default: the project's)."""
        conn_id = conn_id or self.default_conn_id
        if conn_id is None or self.resolve is None:
            raise ConfigError("name the server to import into: give target_conn_id (an "
                              "Airflow Postgres connection id), or set BACKUP_PROJECT_SOURCE")
        conn = self.resolve(conn_id, database)
        if Path(source).exists():
            return import_export(Path(source), conn, policy, dry_run)
        with self.fetched(check_backup_id(str(source))) as path:
            return import_export(path, conn, policy, dry_run)

    def create(self, request: ExportRequest) -> ExportResult:
        """Export ``request.project_ids``; the record is COMPLETED only once the ZIP and
        ``export.json`` are stored, FAILED (naming why) otherwise."""
        if self.spec is None or self.conn is None:
            raise PreconditionError("no project is configured: set BACKUP_PROJECT_ROOT")
        if not request.project_ids:
            raise PreconditionError("give at least one project id to export")
        export_id = make_backup_id(utcnow())
        key = zip_key(self.prefix, export_id)
        record = ExportRecord(
            export_id=export_id, status=RUNNING, source=self.spec.source.name,
            database=self.conn.dbname, project_ids=list(request.project_ids),
            include_data=request.include_data, include_files=request.include_files,
            location=self.storage.uri(key), started_at=self.records.catalog.now(),
            created_by=request.created_by, run=request.run)
        self.records.save(record)
        try:
            files, files_prefix = self.files or (None, "")
            exporter = ProjectExporter(self.storage, self.spec, self.conn, files, self.level,
                                       files_prefix)
            written = exporter.write(export_id, key, request)
            self.storage.put_bytes(info_key(self.prefix, export_id), info_json(written))
        except (BackupError, psycopg.Error, OSError) as exc:
            record.status, record.error = FAILED, self.conn.redact(str(exc))[:2000]
            record.completed_at = utcnow()
            self.records.save(record)
            raise
        manifest = written.manifest
        record.status, record.completed_at = COMPLETED, utcnow()
        record.size_bytes, record.sha256 = written.size, written.sha256
        record.row_count, record.table_count = manifest.total_rows, len(manifest.tables)
        record.file_count = len(manifest.files)
        self.records.save(record)
        return ExportResult(export_id, record.location, written.sha256, written.size,
                            {t.table: t.rows for t in manifest.tables}, len(manifest.files),
                            written.seconds)

    def expire(self, config: BackupConfig, now: datetime, dry_run: bool = False
               ) -> ExportCleanupReport:
        """Retention of the exports: ``BACKUP_RETENTION_DAYS`` and ``BACKUP_KEEP_LAST``."""
        from amprenta_backup.core.export.retention import expire_exports

        return expire_exports(self.records, self.storage, self.prefix, now,
                              config.retention_days, config.keep_last, dry_run)

    def list(self, limit: int = 20) -> list[ExportRecord]:
        return self.records.find(limit=limit)

    def get(self, export_id: str) -> ExportRecord:
        return self.records.get(export_id)

    def open(self, export_id: str) -> tuple[ExportRecord, BinaryIO]:
        """A completed export's record and its ZIP, streamed from storage."""
        record = self.get(export_id)
        if record.status != COMPLETED:
            raise PreconditionError(f"export {export_id} is {record.status}; only completed "
                                    "exports can be downloaded")
        return record, self.storage.open_reader(zip_key(self.prefix, export_id))

    def download(self, export_id: str, path: Path) -> ExportRecord:
        """Write the ZIP to ``path``, proven equal to the recorded sha256 before it appears."""
        import hashlib

        record, reader = self.open(export_id)
        digest = hashlib.sha256()
        partial = path.with_name(path.name + ".partial")
        with reader, partial.open("wb") as out:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != record.sha256:
            partial.unlink()
            raise ChecksumMismatch(f"export {export_id} in storage has sha256 "
                                   f"{digest.hexdigest()}, the catalog says {record.sha256}")
        partial.replace(path)
        return record

    @contextmanager
    def fetched(self, export_id: str) -> Iterator[Path]:
        """The ZIP of ``export_id`` in a temporary folder, checked, for an import."""
        with tempfile.TemporaryDirectory(prefix="amprenta-import-") as folder:
            path = Path(folder) / f"{export_id}.zip"
            self.download(export_id, path)
            yield path


def import_export(source: Path, conn: PgConnInfo, policy: str = "fail",
                  dry_run: bool = False) -> ImportReport:
    """Import the export at ``source`` (a ZIP or an unzipped folder) into ``conn``'s database.

    Every checksum is verified before the database is touched; the rows go in in one
    transaction, committed only when every table loaded (rolled back for ``dry_run``).
    """
    from amprenta_backup.core.export.load import ImportReport, Loader

    archive = ExportArchive(source)
    try:
        report = ImportReport(archive.manifest.export_id, conn.dbname, policy, dry_run)
        report.bytes_verified = archive.verify()
        with psycopg.connect(**conn.connect_kwargs()) as db:
            Loader(archive, db, policy, report).run()
            if dry_run:
                db.rollback()
            else:
                db.commit()
    finally:
        archive.close()
    log.info("import of %s into %s: %d rows%s", report.export_id, conn.describe(),
             report.loaded, " (dry run, rolled back)" if dry_run else "")
    return report


def files_source(root: str, storage: StorageConfig) -> tuple[Storage, str]:
    """The storage and key prefix of ``BACKUP_PROJECT_FILES_ROOT`` (a folder or s3://...)."""
    from amprenta_backup.core.storage.factory import s3_client_from_config
    from amprenta_backup.core.storage.local import LocalStorage
    from amprenta_backup.core.storage.s3 import S3Storage

    if root.startswith("s3://"):
        bucket, _, prefix = root[len("s3://"):].partition("/")
        return S3Storage(s3_client_from_config(storage), bucket), prefix
    return LocalStorage(root), ""
