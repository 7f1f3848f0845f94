"""Physical base backups: ``pg_basebackup`` with server-side zstd, streamed into storage.

Folder ``{prefix}/{target}/{YYYY}/{MM}/{DD}/{backup_id}/`` holds ``base.tar.zst`` (the data
directory, WAL needed for consistency included), PostgreSQL's ``backup_manifest`` and, last,
our ``manifest.json``. The manifest is written only once the WAL segment holding the stop
LSN is in the archive (:meth:`BaseBackupRunner.complete`): before that, the backup could not
be rolled forward past its end, so it does not count.

PostgreSQL 15 refuses ``-D -`` with server-side compression and a manifest, so
pg_basebackup writes into a private temp folder while this process reads the growing
``base.tar.zst`` and uploads it at the same time; the temp folder needs room for the
compressed backup.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from amprenta_backup.core import layout
from amprenta_backup.core.backup.lifecycle import recorded
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.constants import PHYSICAL_TAR_FORMAT, READ_CHUNK
from amprenta_backup.core.encryption import KeyService, ObjectSeal, backup_identity, seal_for
from amprenta_backup.core.encryption.stream import EncryptingWriter
from amprenta_backup.core.errors import DumpError, PreconditionError, StorageError
from amprenta_backup.core.models import (
    RESTORABLE,
    BackupRecord,
    Manifest,
    RunContext,
    Status,
)
from amprenta_backup.core.pgtools import PgConnInfo, for_server, major, tool
from amprenta_backup.core.pipeline import HashingWriter
from amprenta_backup.core.records.heartbeat import DEFAULT_TIMEOUT, RunGuard, sweep_quietly
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.tartally import manifest_file_bytes
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.ranges import WalRange

log = logging.getLogger(__name__)

BASE_NAME = "base.tar.zst"
PG_MANIFEST_NAME = "backup_manifest"
FORMAT = PHYSICAL_TAR_FORMAT
MIN_MAJOR = 15  # server-side zstd (--compress=server-zstd)


def pg_basebackup_argv(folder: Path, label: str, level: int = 3, workers: int = 2,
                       binary: str | None = None) -> list[str]:
    """``pg_basebackup`` into ``folder`` as one zstd tar compressed by the server."""
    return [binary or tool("pg_basebackup"), f"--pgdata={folder}", "--format=tar",
            f"--compress=server-zstd:level={level},workers={workers}", "--wal-method=fetch",
            "--checkpoint=fast", "--no-sync", f"--label={label}", "--verbose"]


class BaseBackupRunner:
    """Takes base backups of one cluster into one storage and records them in one catalog.

    :param storage: where the backup goes
    :param catalog: where its record goes
    :param prefix: key prefix of everything stored
    :param temp_dir: parent of the temp folder pg_basebackup writes into
    :param heartbeat_timeout: a RUNNING backup silent this long is abandoned
    :param keys: encrypts the base backup when encryption is on
    """

    def __init__(self, storage: Storage, catalog: Catalog, prefix: str,
                 temp_dir: str | None = None,
                 heartbeat_timeout: timedelta = DEFAULT_TIMEOUT,
                 keys: KeyService | None = None) -> None:
        self.keys = keys
        self.storage = storage
        self.catalog = catalog
        self.prefix = prefix
        self.temp_dir = temp_dir
        self.heartbeat_timeout = heartbeat_timeout

    def take(self, target: str, conn: PgConnInfo, run: RunContext, backup_id: str) -> Manifest:
        """Run pg_basebackup and store it; the returned manifest is not written yet.

        An already completed backup under ``backup_id`` is returned as it is (with its
        manifest already written). One run per ``backup_id`` at a time, with a heartbeat;
        abandoned backups of ``target`` are marked FAILED and their objects removed first.
        """
        with RunGuard(self.catalog, backup_id, self.heartbeat_timeout):
            sweep_quietly(self.storage, self.catalog, self.prefix, self.heartbeat_timeout,
                          target, backup_id)
            return self._take(target, conn, run, backup_id)

    def _take(self, target: str, conn: PgConnInfo, run: RunContext, backup_id: str
              ) -> Manifest:
        folder = layout.backup_folder(self.prefix, target, backup_id)
        existing = self.catalog.get(backup_id)
        if existing is not None and existing.status in RESTORABLE and existing.manifest:
            return existing.manifest
        self.storage.check_ready()
        if self.keys is not None:  # a key that cannot seal fails here, not mid-backup
            self.keys.check_ready(f"base backup {backup_id} of {target!r}")
        record = BackupRecord(backup_id=backup_id, target=target, status=Status.RUNNING,
                              location=self.storage.uri(folder), started_at=self.catalog.now(),
                              database="", kind="physical", run=run)
        with recorded(self.catalog, record, step="preflight", redact=conn.redact) as life:
            server_version, segment_size = _preflight(conn)
            life.step = "pg_basebackup"
            manifest = self._copy(target, conn, run, backup_id, folder, record.started_at,
                                  server_version, segment_size)
            life.stored(manifest)  # still RUNNING: complete() decides
        return manifest

    def complete(self, manifest: Manifest, archive: WalArchive) -> Manifest:
        """Write the manifest and mark the backup COMPLETED once its stop segment is archived.

        Raises PreconditionError (and records FAILED) if that segment is not archived.
        """
        wal = WalRange.of(manifest)
        folder = layout.folder_of(manifest.key)
        record = self.catalog.get(manifest.backup_id) or BackupRecord(
            backup_id=manifest.backup_id, target=manifest.target, status=Status.RUNNING,
            location=self.storage.uri(folder), started_at=manifest.started_at, kind="physical")
        if record.status in RESTORABLE and self.storage.exists(layout.manifest_key(folder)):
            return manifest
        with recorded(self.catalog, record, step="WAL archived", wrap=False) as life:
            if not archive.has(wal.stop_segment):
                raise PreconditionError(
                    f"base backup {manifest.backup_id} is not usable: WAL segment "
                    f"{wal.stop_segment} (stop LSN {wal.stop_lsn}) never reached the archive "
                    f"at {archive.storage.uri(archive.key(wal.stop_segment))}; check "
                    "archive_command and pg_stat_archiver on the server")
            life.step = "manifest"
            self.storage.put_bytes(layout.manifest_key(folder), manifest.to_json())
            life.complete(manifest)
        log.info("base backup %s complete: WAL %s..%s", manifest.backup_id, wal.start_segment,
                 wal.stop_segment)
        return manifest

    def _copy(self, target: str, conn: PgConnInfo, run: RunContext, backup_id: str,
              folder: str, started_at: datetime, server_version: str,
              segment_size: int) -> Manifest:
        work = Path(tempfile.mkdtemp(prefix="amprenta-basebackup-", dir=self.temp_dir))
        try:
            out = work / "bb"
            key = f"{folder}/{BASE_NAME}"
            seal = seal_for(self.keys, backup_identity(backup_id, key))
            client = for_server("pg_basebackup", major(server_version))
            argv = pg_basebackup_argv(out, f"amprenta {backup_id}",
                                      binary=client.path("pg_basebackup"))
            with open(work / "stderr", "wb") as errors:
                proc = subprocess.Popen(argv,
                                        env=conn.env(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=errors)
                try:
                    stored, sha = _upload_growing(out / BASE_NAME, proc, self.storage, key,
                                                  seal)
                except _ToolFailed:
                    tail = (work / "stderr").read_text(errors="replace").strip().splitlines()
                    raise DumpError(f"pg_basebackup exited with code {proc.returncode}: "
                                    f"{' / '.join(tail[-3:]) or 'no message'}") from None
                finally:
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()
            pg_manifest = (out / PG_MANIFEST_NAME).read_bytes()
            self.storage.put_bytes(f"{folder}/{PG_MANIFEST_NAME}", pg_manifest)
            parsed = json.loads(pg_manifest)
            raw = manifest_file_bytes(parsed)  # the files' bytes: no decompression needed
            ranges = parsed["WAL-Ranges"]
            wal = WalRange(timeline=int(ranges[-1]["Timeline"]),
                           start_lsn=ranges[-1]["Start-LSN"], stop_lsn=ranges[0]["End-LSN"],
                           segment_size=segment_size, stop_time=self.catalog.now_or_estimate())
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info("stored base backup %s: %d bytes (%d raw), WAL %s..%s", backup_id, stored, raw,
                 wal.start_lsn, wal.stop_lsn)
        return Manifest(
            backup_id=backup_id, target=target, database="", kind="physical", key=key,
            format=FORMAT, compression="server-zstd:3", stored_bytes=stored, raw_bytes=raw,
            sha256=sha, started_at=started_at, completed_at=wal.stop_time,
            server_version=server_version, pg_dump_version=client.version,
            run=run, wal=wal.to_dict(), encryption=seal.record() if seal else None)


def _preflight(conn: PgConnInfo) -> tuple[str, int]:
    """The server's version and WAL segment size; refuses a server that does not archive."""
    with psycopg.connect(**conn.connect_kwargs()) as db:
        row = db.execute("SELECT current_setting('server_version'), "
                         "current_setting('archive_mode'), setting::bigint "
                         "FROM pg_settings WHERE name = 'wal_segment_size'").fetchone()
    assert row is not None
    if major(str(row[0])) < MIN_MAJOR:
        raise PreconditionError(
            f"{conn.describe()} runs PostgreSQL {row[0]}: base backups need PostgreSQL "
            f"{MIN_MAJOR} or newer (server-side zstd compression); use logical backups there")
    if row[1] == "off":
        raise PreconditionError(
            f"archive_mode is off on {conn.describe()}: without archived WAL a base backup "
            "cannot be rolled forward to a point in time. Set archive_mode = on and "
            "archive_command = 'amprenta-wal push %p %f' (docs/pitr.md)")
    return str(row[0]), int(str(row[2]))


def _follow(path: Path, proc: subprocess.Popen[bytes]) -> Iterator[bytes]:
    """The bytes of a file another process is still appending to, until it exits."""
    while not path.exists():
        if proc.poll() is not None:
            return
        time.sleep(0.02)
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(READ_CHUNK)
            if chunk:
                yield chunk
                continue
            if proc.poll() is not None:
                while chunk := handle.read(READ_CHUNK):  # written just before it exited
                    yield chunk
                return
            time.sleep(0.02)


class _ToolFailed(Exception):
    """pg_basebackup exited with an error."""


def _upload_growing(path: Path, proc: subprocess.Popen[bytes], storage: Storage,
                    key: str, seal: ObjectSeal | None) -> tuple[int, str]:
    """Upload ``path`` while ``proc`` writes it (encrypted with ``seal``, if given): stored
    bytes and sha256 of the stored bytes.

    Nothing is decompressed on the way (that cost 15 % of the backup's time): the raw size
    comes from ``backup_manifest``, and verification decompresses and walks the tar.
    """
    with storage.open_writer(key) as writer:
        sink = HashingWriter(writer, checksum=True)
        out: HashingWriter | EncryptingWriter = sink if seal is None else seal.writer(sink)
        written = 0
        for chunk in _follow(path, proc):
            out.write(chunk)
            written += len(chunk)
        if proc.wait() != 0:
            raise _ToolFailed  # aborts the upload; the caller reports pg_basebackup's stderr
        if not written:
            raise StorageError(f"pg_basebackup wrote no {path.name}")
        if isinstance(out, EncryptingWriter):
            out.close()
    assert sink.hexdigest is not None
    return sink.count, sink.hexdigest
