"""Verification: read a stored backup back whole and prove it matches its manifest."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.childenv import minimal_env
from amprenta_backup.core.constants import PHYSICAL_TAR_FORMAT
from amprenta_backup.core.encryption import KeyService
from amprenta_backup.core.errors import ChecksumMismatch, PreconditionError
from amprenta_backup.core.models import BackupRecord, Manifest, RunContext, Status
from amprenta_backup.core.pgtools import for_dump, pg_restore_argv
from amprenta_backup.core.readback import Progress, Readback, ToolInput, read_back
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.tartally import TarTally

log = logging.getLogger(__name__)

ARCHIVE_FORMAT = "pg_dump-custom"
TAR_FORMAT = PHYSICAL_TAR_FORMAT
VERIFIABLE = (Status.COMPLETED, Status.VERIFIED, Status.CORRUPT)

_INSERT = """
INSERT INTO backup_verifications (backup_id, target, ok, detail, checked, expected_sha256,
    actual_sha256, stored_bytes, raw_bytes, seconds, dag_id, run_id)
VALUES (%(backup_id)s, %(target)s, %(ok)s, %(detail)s, %(checked)s, %(expected_sha256)s,
    %(actual_sha256)s, %(stored_bytes)s, %(raw_bytes)s, %(seconds)s, %(dag_id)s, %(run_id)s)
"""


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of one verification.

    :param backup_id: the backup read back
    :param target: its target
    :param location: URI of its folder in storage
    :param problems: what did not match, in words; empty when the backup is intact
    :param checked: what was checked (``manifest``, ``sha256``, ``size``, ``archive``)
    :param expected_sha256: sha256 from the manifest
    :param actual_sha256: sha256 of the bytes read from storage
    :param stored_bytes: bytes read from storage
    :param raw_bytes: bytes after decompression
    :param seconds: how long the read took
    """

    backup_id: str
    target: str
    location: str
    problems: tuple[str, ...] = ()
    checked: tuple[str, ...] = ()
    expected_sha256: str | None = None
    actual_sha256: str | None = None
    stored_bytes: int | None = None
    raw_bytes: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def status(self) -> Status:
        return Status.VERIFIED if self.ok else Status.CORRUPT

    @property
    def detail(self) -> str:
        return "; ".join(self.problems)

    @property
    def message(self) -> str:
        if self.ok:
            return (f"backup {self.backup_id} of target {self.target} is intact "
                    f"({', '.join(self.checked)} checked, {self.seconds:.1f} s)")
        return (f"backup {self.backup_id} of target {self.target} is CORRUPT: {self.detail} "
                f"(at {self.location}); restore from another backup and find out what damaged "
                "this one")

    def raise_if_corrupt(self) -> None:
        """:class:`ChecksumMismatch` with :attr:`message` unless the backup is intact."""
        if not self.ok:
            raise ChecksumMismatch(self.message)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ok=self.ok, status=str(self.status), detail=self.detail,
                    problems=list(self.problems), checked=list(self.checked))
        return data


def folder_of(storage: Storage, backup: BackupRecord | Manifest) -> str:
    """The storage key of a backup's folder (from the record's location, or the manifest)."""
    if isinstance(backup, Manifest):
        return layout.folder_of(backup.key)
    folder = storage.key_of(backup.location)
    if folder is None:
        raise PreconditionError(
            f"backup {backup.backup_id} is stored at {backup.location}, outside the configured "
            f"storage {storage.uri('')}; point BACKUP_STORAGE_TYPE / BACKUP_S3_BUCKET / "
            "BACKUP_LOCAL_PATH at the storage that holds it")
    return folder


def record_mismatches(record: BackupRecord, manifest: Manifest) -> list[str]:
    """How a stored manifest differs from the catalog record of its folder (id, target,
    sha256, size), in words; a difference means the folder holds another backup's objects
    (copied or moved there) or was rewritten."""
    return [f"its {what} is {got!r}, the catalog's is {want!r}" for what, got, want in (
        ("backup id", manifest.backup_id, record.backup_id),
        ("target", manifest.target, record.target),
        ("sha256", manifest.sha256, record.sha256),
        ("stored size", manifest.stored_bytes, record.stored_bytes)) if want and got != want]


def verify_backup(storage: Storage, catalog: Catalog, backup: BackupRecord | Manifest,
                  run: RunContext | None = None, progress: Progress | None = None,
                  keys: KeyService | None = None) -> VerifyResult:
    """Read one backup back whole, record VERIFIED or CORRUPT in the catalog, return the result.

    The manifest is read from storage (the source of truth). The dump is streamed once:
    sha256 and size of the stored bytes, and at the same time decompressed into
    ``pg_restore -f /dev/null`` so every byte of the archive is parsed (``pg_restore --list``
    reads only the table of contents and misses damage in the data). A missing manifest or
    dump object is reported as such. Storage that cannot be reached raises StorageError and
    marks nothing. An encrypted dump is decrypted on the way (every chunk's authentication tag
    checked); a key that cannot be had raises KeyUnavailable and marks nothing.
    """
    started = time.monotonic()
    folder = folder_of(storage, backup)
    problems: list[str] = []
    checked: list[str] = ["manifest"]
    manifest = _stored_manifest(storage, folder, problems)
    readbacks: list[Readback] = []
    if manifest is not None:
        if isinstance(backup, BackupRecord):
            problems += record_mismatches(backup, manifest)
        checked += _what_is_checked(manifest)
        readbacks = _read_objects(storage, manifest, problems, progress, keys)
    result = VerifyResult(
        backup_id=backup.backup_id, target=backup.target, location=storage.uri(folder),
        problems=tuple(problems), checked=tuple(checked),
        expected_sha256=manifest.sha256 if manifest else None,
        actual_sha256=readbacks[0].sha256 if readbacks else None,
        stored_bytes=sum(r.stored_bytes for r in readbacks) if readbacks else None,
        raw_bytes=(sum(r.raw_bytes or 0 for r in readbacks) if readbacks else None),
        seconds=round(time.monotonic() - started, 3),
    )
    record_result(catalog, result, run)
    if result.ok:
        log.info("%s", result.message)
    else:
        log.error("%s", result.message)
    return result


def _stored_manifest(storage: Storage, folder: str, problems: list[str]) -> Manifest | None:
    key = layout.manifest_key(folder)
    if not storage.exists(key):
        problems.append(f"manifest missing: {storage.uri(key)}")
        return None
    try:
        return Manifest.from_json(storage.get_bytes(key))
    except (ValueError, TypeError, KeyError) as exc:
        problems.append(f"manifest unreadable: {storage.uri(key)} ({type(exc).__name__}: {exc})")
        return None


def _what_is_checked(manifest: Manifest) -> list[str]:
    checked = (["sha256"] if manifest.sha256 else []) + ["size"]
    checked += ["authentication tags"] if manifest.encryption else []
    checked += ["tar"] if manifest.format == TAR_FORMAT else []
    checked += ["archive"] if manifest.objects()[0].format == ARCHIVE_FORMAT else []
    return checked + ([f"{len(manifest.parts)} parts"] if manifest.parts else [])


def _read_objects(storage: Storage, manifest: Manifest, problems: list[str],
                  progress: Progress | None, keys: KeyService | None) -> list[Readback]:
    """Read every dump object of ``manifest`` whole (the parts of a parallel dump one after
    another); a missing or damaged one is named in ``problems``."""
    readbacks: list[Readback] = []
    done = 0
    for obj in manifest.objects():
        if not storage.exists(obj.key):
            problems.append(f"object missing: {storage.uri(obj.key)}")
            continue
        found: list[str] = []
        step = None if progress is None else (lambda n, base=done: progress(base + n))
        readbacks.append(_read_whole(storage, obj, found, step, keys))
        done += readbacks[-1].stored_bytes
        named = f"{storage.uri(obj.key)}: " if manifest.parts else ""
        problems += [named + problem for problem in found]
    return readbacks


def _read_whole(storage: Storage, manifest: Manifest, problems: list[str],
                progress: Progress | None, keys: KeyService | None) -> Readback:
    if manifest.format == TAR_FORMAT:
        return _read_tar(storage, manifest, problems, progress, keys)
    if manifest.format != ARCHIVE_FORMAT:
        readback = read_back(storage, manifest, None, decompress=True, progress=progress,
                             keys=keys)
        problems += readback.mismatches(manifest)
        return readback
    pg_restore = for_dump(manifest.pg_dump_version).path("pg_restore")
    with ToolInput(pg_restore_argv(binary=pg_restore), env=minimal_env()) as tool:
        readback = read_back(storage, manifest, tool, decompress=True, progress=progress,
                             keys=keys)
        code, stderr = tool.finish()
    problems += readback.mismatches(manifest)
    if code != 0:
        last = " / ".join(stderr.splitlines()[-2:])[-300:] or f"exit code {code}"
        problems.append(f"pg_restore could not read the whole archive: {last}")
    return readback


def _read_tar(storage: Storage, manifest: Manifest, problems: list[str],
              progress: Progress | None, keys: KeyService | None) -> Readback:
    """A base backup: every tar header walked; its files' bytes must be the manifest's
    ``raw_bytes`` (older base backups recorded the tar's whole length: accepted too)."""
    tally = TarTally()
    readback = read_back(storage, manifest, tally, decompress=True, progress=progress,
                         keys=keys)
    problems += replace(readback, raw_bytes=None).mismatches(manifest)
    if readback.error is None:
        if manifest.raw_bytes not in (tally.file_bytes, readback.raw_bytes):
            problems.append(f"the tar holds {tally.file_bytes} bytes of files outside pg_wal/ "
                            f"({readback.raw_bytes} bytes in all), the manifest says "
                            f"{manifest.raw_bytes}")
        if damage := tally.problem():
            problems.append(f"the base backup's tar is damaged: {damage}")
    return readback


def record_result(catalog: Catalog, result: VerifyResult, run: RunContext | None = None) -> None:
    """Add a ``backup_verifications`` row and set the record's status (VERIFIED or CORRUPT)."""
    if not catalog.writable:
        log.warning("the outcome of verifying backup %s is not recorded: %s is read-only",
                    result.backup_id, catalog.describe())
        return
    run = run or RunContext()
    row = {"backup_id": result.backup_id, "target": result.target, "ok": result.ok,
           "detail": result.detail or None, "checked": json.dumps(list(result.checked)),
           "expected_sha256": result.expected_sha256, "actual_sha256": result.actual_sha256,
           "stored_bytes": result.stored_bytes, "raw_bytes": result.raw_bytes,
           "seconds": result.seconds, "dag_id": run.dag_id, "run_id": run.run_id}
    with catalog.cursor() as cur:
        cur.execute(_INSERT, row)
    error = None if result.ok else f"verification failed: {result.detail}"
    if not catalog.set_status(result.backup_id, result.status, error):
        log.warning("backup %s has no finished catalog record (missing, deleted or still "
                    "running); its verification was logged only", result.backup_id)


def history(catalog: Catalog, backup_id: str) -> list[dict[str, Any]]:
    """Every verification of one backup, newest first."""
    with catalog.cursor() as cur:
        cur.execute("SELECT * FROM backup_verifications WHERE backup_id = %s "
                    "ORDER BY verified_at DESC, id DESC", (backup_id,))
        return list(cur.fetchall())


def pending(catalog: Catalog, started_after: datetime | None = None,
            before: datetime | None = None, limit: int | None = None,
            reverify_after: timedelta | None = None, now: datetime | None = None,
            ) -> list[BackupRecord]:
    """Backups to verify, optionally within a time window: the completed ones never verified
    (newest first), then, with ``reverify_after``, verified ones whose last good verification
    is older than that (longest ago first), so bit rot after the first check is caught too."""
    found = catalog.find(statuses=[Status.COMPLETED], started_after=started_after,
                         before=before, limit=limit)
    if reverify_after is None or (limit is not None and len(found) >= limit):
        return found
    verified = {r.backup_id: r for r in catalog.find(
        statuses=[Status.VERIFIED], started_after=started_after, before=before)}
    if not verified:
        return found
    cutoff = (now or datetime.now(UTC)) - reverify_after
    with catalog.cursor() as cur:
        cur.execute("SELECT backup_id, max(verified_at) AS last FROM backup_verifications "
                    "WHERE ok AND backup_id = ANY(%s) GROUP BY backup_id",
                    (list(verified),))
        last = {row["backup_id"]: row["last"] for row in cur.fetchall()}
    stale = sorted((b for b in verified if last.get(b) is None or last[b] < cutoff),
                   key=lambda b: (last.get(b) is not None, last.get(b) or cutoff))
    room = None if limit is None else limit - len(found)
    return found + [verified[b] for b in stale[:room]]
