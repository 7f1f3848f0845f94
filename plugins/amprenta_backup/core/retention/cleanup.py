"""Carry out a retention plan: objects first, then records; sweep stale uploads and leftovers."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.constants import MANIFEST_NAME
from amprenta_backup.core.errors import BackupError, ObjectLocked
from amprenta_backup.core.models import BackupRecord, ObjectInfo, Status
from amprenta_backup.core.records.heartbeat import DEFAULT_TIMEOUT, find_abandoned, sweep_abandoned
from amprenta_backup.core.retention.globals import sweep_globals
from amprenta_backup.core.retention.policies import (
    CleanupPlan,
    Decision,
    RetentionPolicy,
    plan_cleanup,
)
from amprenta_backup.core.storage.base import Storage

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(days=1)
SWEEPABLE = (None, Status.FAILED, Status.DELETED)  # record statuses whose leftovers may go

_MARK_DELETED = """
UPDATE backup_records SET status = 'deleted', deleted_at = %s, deleted_by = %s,
    delete_reason = %s, updated_at = now()
WHERE id = %s AND status = %s
"""


@dataclass
class CleanupReport:
    """What a cleanup run removed, freed and kept, and why; JSON-able through :meth:`to_dict`.

    :param plan: the retention plan the run carried out
    :param dry_run: True when nothing was changed
    """

    plan: CleanupPlan
    dry_run: bool
    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    aborted_uploads: list[str] = field(default_factory=list)
    leftovers_removed: list[str] = field(default_factory=list)
    leftover_bytes: int = 0
    missing_manifests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    globals_removed: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (f"{verb} {len(self.removed)} backups ({self.bytes_freed} bytes), "
                f"{len(self.aborted_uploads)} stale uploads, {len(self.leftovers_removed)} "
                f"leftover objects and {len(self.globals_removed)} unused globals "
                f"({self.leftover_bytes} bytes), {len(self.abandoned)} abandoned backups; "
                f"{self.plan.kept_summary()}; {len(self.locked)} skipped under S3 Object Lock; "
                f"{len(self.errors)} errors")

    def to_dict(self, with_plan: bool = False) -> dict[str, Any]:
        """The figures; ``with_plan`` adds every decision (large for long retention)."""
        data: dict[str, Any] = {
            "dry_run": self.dry_run, "removed": self.removed,
            "removed_count": len(self.removed), "bytes_freed": self.bytes_freed,
            "kept_count": len(self.plan.kept), "kept_reasons": self.plan.kept_reasons(),
            "aborted_uploads": self.aborted_uploads, "leftovers_removed": self.leftovers_removed,
            "globals_removed": self.globals_removed,
            "leftover_bytes": self.leftover_bytes, "missing_manifests": self.missing_manifests,
            "abandoned": self.abandoned, "locked": self.locked, "errors": self.errors}
        if with_plan:
            data["plan"] = self.plan.to_dict()
        return data


def plan_with_locks(storage: Storage, records: list[BackupRecord],
                    policies: Sequence[RetentionPolicy], now: datetime,
                    folder_of: Callable[[BackupRecord], str | None]) -> CleanupPlan:
    """The retention plan of ``records``; the backups it would delete whose objects S3 Object
    Lock still keeps (their latest retain-until date, read from ``storage``) are planned again
    as kept. ``folder_of``: a record's folder key in ``storage`` (None: not there)."""
    first = plan_cleanup(records, policies, now)
    locks: dict[str, datetime] = {}
    for decision in first.to_delete:
        folder = folder_of(decision.record)
        for obj in storage.list_objects(folder + "/") if folder else ():
            until = storage.retention_until(obj.key)
            if until is not None and until > locks.get(decision.record.backup_id, now):
                locks[decision.record.backup_id] = until
    return plan_cleanup(records, policies, now, locks) if locks else first


class Cleanup:
    """Applies retention to one storage and catalog.

    :param storage: where the backups are
    :param catalog: where their records are
    :param policies: the retention policies (see :func:`policies_from_config`)
    :param prefix: key prefix of everything stored (BACKUP_S3_PREFIX)
    :param heartbeat_timeout: a RUNNING backup silent this long is abandoned: FAILED, and its
        partial objects removed
    """

    def __init__(self, storage: Storage, catalog: Catalog, policies: Sequence[RetentionPolicy],
                 prefix: str, heartbeat_timeout: timedelta = DEFAULT_TIMEOUT) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        self.storage = storage
        self.catalog = catalog
        self.policies = list(policies)
        self.prefix = prefix.strip("/")
        stem = re.escape(self.prefix) + "/" if self.prefix else ""
        self._folder_re = re.compile(
            rf"^{stem}[^/]+/\d{{4}}/\d{{2}}/\d{{2}}/{layout.BACKUP_ID.pattern.strip('^$')}$")

    def plan(self, now: datetime) -> CleanupPlan:
        """The plan for every record in the catalog, with Object Lock dates read from storage."""
        return plan_with_locks(self.storage, self.catalog.find(), self.policies, now,
                               self.folder_of)

    def run(self, now: datetime | None, deleted_by: str, dry_run: bool = False) -> CleanupReport:
        """Plan, then (unless ``dry_run``) delete, mark records and sweep leftovers.

        :param now: the time to plan for; None (the normal case) takes the catalog server's,
            the clock backup times are written with, whatever this worker's clock says
        """
        now = now or self.catalog.now()
        abandoned = find_abandoned(self.catalog, self.heartbeat_timeout, now=now) if dry_run \
            else sweep_abandoned(self.storage, self.catalog, self.prefix, self.heartbeat_timeout,
                                 now=now)
        plan = self.plan(now)
        log.info("%s", plan.render())
        report = CleanupReport(plan, dry_run, abandoned=[a.backup_id for a in abandoned])
        for decision in plan.to_delete:
            try:
                self._remove(decision, now, deleted_by, report)
            except ObjectLocked as exc:  # S3's clock says the date is still ahead: next run
                report.locked.append(f"{decision.record.backup_id}: {exc}")
                log.warning("kept backup %s: %s", decision.record.backup_id, exc)
            except BackupError as exc:
                report.errors.append(f"{decision.record.backup_id}: {exc}")
                log.error("could not remove backup %s: %s", decision.record.backup_id, exc)
        self._sweep(now, {r.record.backup_id: r.record.status for r in plan.decisions}, report)
        swept = sweep_globals(self.storage, self.prefix, now, STALE_AFTER, dry_run)
        report.globals_removed, report.leftover_bytes = (
            swept.removed, report.leftover_bytes + swept.bytes_freed)
        report.locked += swept.locked
        log.info("cleanup: %s", report.summary())
        return report

    def folder_of(self, record: BackupRecord) -> str | None:
        """The record's folder key in this storage, or None if it lives elsewhere."""
        root = self.storage.uri("")
        if not record.location.startswith(root):
            return None
        folder = record.location[len(root):].strip("/")
        return folder if self._folder_re.match(folder) and \
            folder.endswith("/" + record.backup_id) else None

    def _remove(self, decision: Decision, now: datetime, deleted_by: str,
                report: CleanupReport) -> None:
        record = decision.record
        folder = self.folder_of(record)
        if folder is None:
            report.errors.append(f"{record.backup_id}: location {record.location} is not a "
                                 f"backup folder in {self.storage.uri('')}; left as it is")
            return
        objects = list(self.storage.list_objects(folder + "/"))
        manifests = [o.key for o in objects if o.key.endswith("/" + MANIFEST_NAME)]
        if not report.dry_run:
            current = self.catalog.get(record.backup_id)
            if current is None or current.status != record.status:
                report.errors.append(f"{record.backup_id}: changed while planning; kept")
                return
            # the manifest goes first: an interrupted delete leaves an incomplete backup,
            # never a manifest that points at missing bytes
            self.storage.delete(manifests)
            self.storage.delete([o.key for o in objects if o.key not in manifests])
            with self.catalog.cursor() as cur:
                cur.execute(_MARK_DELETED, (now, deleted_by, decision.reason, record.backup_id,
                                            str(record.status)))
        report.removed.append(record.backup_id)
        report.bytes_freed += sum(o.size for o in objects)
        log.info("%s backup %s of %s (%d objects): %s", "would remove" if report.dry_run
                 else "removed", record.backup_id, record.target, len(objects), decision.reason)

    def _delete_leftovers(self, objects: list[ObjectInfo], report: CleanupReport) -> bool:
        """Delete leftover objects; False (reported) if S3 Object Lock still keeps some."""
        try:
            self.storage.delete([o.key for o in objects])
        except ObjectLocked as exc:
            report.locked.append(f"{layout.folder_of(objects[0].key)}: {exc}")
            log.warning("leftover objects kept: %s", exc)
            return False
        return True

    def _sweep(self, now: datetime, statuses: dict[str, Status], report: CleanupReport) -> None:
        stem = self.prefix + "/" if self.prefix else ""
        for upload in self.storage.list_incomplete_uploads(stem):
            backup_id = upload.key.rsplit("/", 2)[-2] if upload.key.count("/") >= 1 else ""
            if statuses.get(backup_id) == Status.RUNNING:
                continue  # a backup that runs for more than a day is still writing it
            if upload.initiated < now - STALE_AFTER:
                if not report.dry_run:
                    self.storage.abort_upload(upload)
                report.aborted_uploads.append(upload.key)
        folders: dict[str, list[ObjectInfo]] = defaultdict(list)
        for obj in self.storage.list_objects(stem):
            folder = layout.folder_of(obj.key)
            if self._folder_re.match(folder):
                folders[folder].append(obj)
        for folder, objects in sorted(folders.items()):
            if any(o.key.endswith("/" + MANIFEST_NAME) for o in objects):
                continue
            status = statuses.get(folder.rsplit("/", 1)[1])
            if status == Status.RUNNING:
                continue
            if status not in SWEEPABLE:
                report.missing_manifests.append(folder)
                log.warning("backup folder %s has no manifest but its record is %s; left as "
                            "it is", self.storage.uri(folder), status)
            elif max(o.last_modified for o in objects) < now - STALE_AFTER:
                if not report.dry_run and not self._delete_leftovers(objects, report):
                    continue
                report.leftovers_removed.extend(o.key for o in objects)
                report.leftover_bytes += sum(o.size for o in objects)
