"""The catalog's ``backup_copies``: one row per backup per copy storage, and a catalog view
whose records are the copies (their status and location) for reading from the copy."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import BackupRecord, RunContext, Status

log = logging.getLogger(__name__)


class CopyStatus(StrEnum):
    """Lifecycle of one copy: COPYING -> VERIFIED or FAILED, later CORRUPT or DELETED."""

    COPYING = "copying"
    VERIFIED = "verified"
    FAILED = "failed"
    CORRUPT = "corrupt"
    DELETED = "deleted"


AS_RECORD = {CopyStatus.COPYING: Status.RUNNING, CopyStatus.VERIFIED: Status.VERIFIED,
             CopyStatus.FAILED: Status.FAILED, CopyStatus.CORRUPT: Status.CORRUPT,
             CopyStatus.DELETED: Status.DELETED}
"""The backup record status a copy reads as (retention's never-delete rules, restores)."""


@dataclass
class CopyRecord:
    """One row of ``backup_copies``.

    :param backup_id: the backup copied
    :param storage: URI of the copy storage's root (bucket and prefix, or folder)
    :param location: URI of the backup's folder in the copy
    :param stored_bytes: bytes copied, every object of the backup
    :param sha256: sha256 of the dump on the copy, read back after the copy
    :param objects: how many objects were copied
    """

    backup_id: str
    storage: str
    target: str
    location: str
    status: CopyStatus
    stored_bytes: int | None = None
    sha256: str | None = None
    objects: int | None = None
    error: str | None = None
    started_at: datetime | None = None
    copied_at: datetime | None = None
    verified_at: datetime | None = None
    seconds: float | None = None
    run: RunContext = dataclasses.field(default_factory=RunContext)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(status=str(self.status), run=self.run.to_dict())
        for name in ("started_at", "copied_at", "verified_at"):
            value = getattr(self, name)
            data[name] = value.isoformat() if value else None
        return data


_SAVE = """
INSERT INTO backup_copies (backup_id, storage, target, location, status, stored_bytes, sha256,
    objects, error, started_at, copied_at, verified_at, seconds, dag_id, run_id)
VALUES (%(backup_id)s, %(storage)s, %(target)s, %(location)s, %(status)s, %(stored_bytes)s,
    %(sha256)s, %(objects)s, %(error)s, coalesce(%(started_at)s, now()), %(copied_at)s,
    %(verified_at)s, %(seconds)s, %(dag_id)s, %(run_id)s)
ON CONFLICT (backup_id, storage) DO UPDATE SET
    location = EXCLUDED.location, status = EXCLUDED.status,
    stored_bytes = EXCLUDED.stored_bytes, sha256 = EXCLUDED.sha256, objects = EXCLUDED.objects,
    error = EXCLUDED.error, started_at = EXCLUDED.started_at, copied_at = EXCLUDED.copied_at,
    verified_at = EXCLUDED.verified_at, seconds = EXCLUDED.seconds, dag_id = EXCLUDED.dag_id,
    run_id = EXCLUDED.run_id, deleted_at = NULL, delete_reason = NULL, updated_at = now()
"""


class CopyRecords:
    """The rows of ``backup_copies`` of one copy storage.

    :param catalog: the catalog that holds them
    :param storage: URI of the copy storage's root
    """

    def __init__(self, catalog: Catalog, storage: str) -> None:
        self.catalog = catalog
        self.storage = storage

    def save(self, record: CopyRecord) -> None:
        row = {k: v for k, v in dataclasses.asdict(record).items() if k != "run"}
        row.update(status=str(record.status), dag_id=record.run.dag_id,
                   run_id=record.run.run_id)
        with self.catalog.cursor() as cur:
            cur.execute(_SAVE, row)

    def get(self, backup_id: str) -> CopyRecord | None:
        found = self.find(backup_ids=[backup_id])
        return found[0] if found else None

    def find(self, backup_ids: Iterable[str] | None = None,
             statuses: Iterable[CopyStatus] | None = None) -> list[CopyRecord]:
        """The copies in this storage (of ``backup_ids``, with ``statuses``), newest first."""
        clauses, params = ["storage = %s"], [self.storage]
        if backup_ids is not None:
            clauses.append("backup_id = ANY(%s)")
            params.append(list(backup_ids))  # type: ignore[arg-type]
        if statuses is not None:
            clauses.append("status = ANY(%s)")
            params.append([str(s) for s in statuses])  # type: ignore[arg-type]
        query = (f"SELECT * FROM backup_copies WHERE {' AND '.join(clauses)} "
                 "ORDER BY backup_id DESC")
        with self.catalog.cursor() as cur:
            cur.execute(query.encode(), params)
            return [_from_row(row) for row in cur.fetchall()]

    def set_status(self, backup_id: str, status: CopyStatus, error: str | None = None,
                   reason: str | None = None) -> bool:
        """Set a copy's status (VERIFIED stamps ``verified_at``); False if there is none."""
        with self.catalog.cursor() as cur:
            cur.execute(
                "UPDATE backup_copies SET status = %s, error = %s, updated_at = now(), "
                "verified_at = CASE WHEN %s = 'verified' THEN now() ELSE verified_at END, "
                "deleted_at = CASE WHEN %s = 'deleted' THEN now() END, delete_reason = %s "
                "WHERE backup_id = %s AND storage = %s AND status <> 'deleted'",
                (str(status), error, str(status), str(status), reason, backup_id, self.storage))
            return cur.rowcount == 1


def _from_row(row: dict[str, Any]) -> CopyRecord:
    return CopyRecord(
        backup_id=row["backup_id"], storage=row["storage"], target=row["target"],
        location=row["location"], status=CopyStatus(row["status"]),
        stored_bytes=row["stored_bytes"], sha256=row["sha256"], objects=row["objects"],
        error=row["error"], started_at=row["started_at"], copied_at=row["copied_at"],
        verified_at=row["verified_at"], seconds=row["seconds"],
        run=RunContext(dag_id=row["dag_id"], run_id=row["run_id"]))


def as_backup(record: BackupRecord, copy: CopyRecord) -> BackupRecord:
    """The backup record as its copy: the copy's status and location."""
    return dataclasses.replace(record, status=AS_RECORD[copy.status], location=copy.location,
                               error=copy.error)


class CopyCatalog(Catalog):
    """The catalog seen from the copy: each backup record with its copy's status and location
    (a backup without a copy is left out), and status changes (a verify, a restore that finds
    the copy damaged) written to ``backup_copies``, never to the primary's records.

    :param primary: the catalog of the primary storage
    :param copies: the rows of the copy storage
    """

    def __init__(self, primary: Catalog, copies: CopyRecords) -> None:
        super().__init__(primary.conn)
        self.primary = primary
        self.copies = copies

    def describe(self) -> str:
        return f"{self.primary.describe()} (copies in {self.copies.storage})"

    def get(self, backup_id: str) -> BackupRecord | None:
        record, copy = self.primary.get(backup_id), self.copies.get(backup_id)
        return as_backup(record, copy) if record and copy else None

    def find(self, target: str | None = None, statuses: Iterable[Status] | None = None,
             limit: int | None = None, before: datetime | None = None,
             started_after: datetime | None = None) -> list[BackupRecord]:
        records = self.primary.find(target=target, before=before, started_after=started_after)
        copies = {c.backup_id: c for c in self.copies.find([r.backup_id for r in records])}
        wanted = None if statuses is None else set(statuses)
        seen = [as_backup(r, copies[r.backup_id]) for r in records if r.backup_id in copies]
        found = [r for r in seen if wanted is None or r.status in wanted]
        return found if limit is None else found[:limit]

    def set_status(self, backup_id: str, status: Status, error: str | None = None) -> bool:
        mine = {v: k for k, v in AS_RECORD.items()}.get(status)
        if mine is None:
            return False
        if mine == CopyStatus.CORRUPT:
            log.error("the copy of backup %s in %s is CORRUPT: %s", backup_id,
                      self.copies.storage, error)
        return self.copies.set_status(backup_id, mine, error)

    def save(self, record: BackupRecord) -> None:
        raise NotImplementedError("the copy's view of the catalog records no backups")
