"""Retention of the copy: its own policies (``BACKUP_COPY_RETENTION_*``), the primary's
never-delete rules applied to the copies (never the newest good copy of a target, never one
under Object Lock or legal hold, never one still copying, nothing younger than 7 days)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from amprenta_backup.core.constants import MANIFEST_NAME
from amprenta_backup.core.copy.records import CopyStatus
from amprenta_backup.core.copy.workflow import CopyWorkflow
from amprenta_backup.core.errors import BackupError, ObjectLocked
from amprenta_backup.core.retention.cleanup import plan_with_locks
from amprenta_backup.core.retention.policies import (
    CleanupPlan,
    RetentionPolicy,
    policies_from_config,
)
from amprenta_backup.core.settings import BackupConfig, CopySettings

log = logging.getLogger(__name__)


@dataclass
class CopyCleanupReport:
    """What a retention run on the copy removed and kept."""

    plan: CleanupPlan
    dry_run: bool
    storage: str
    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    errors: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (f"copy {self.storage}: {verb} {len(self.removed)} backups ({self.bytes_freed} "
                f"bytes); {self.plan.kept_summary()}; {len(self.locked)} skipped under S3 "
                f"Object Lock; {len(self.errors)} errors")

    def to_dict(self) -> dict[str, Any]:
        return {"storage": self.storage, "dry_run": self.dry_run, "removed": self.removed,
                "removed_count": len(self.removed), "bytes_freed": self.bytes_freed,
                "kept_count": len(self.plan.kept), "kept_reasons": self.plan.kept_reasons(),
                "locked": self.locked, "errors": self.errors}


def clean_copies(workflow: CopyWorkflow, policies: list[RetentionPolicy], now: datetime,
                 deleted_by: str, dry_run: bool = False) -> CopyCleanupReport:
    """Plan the copy's retention over its copies and (unless ``dry_run``) remove the expired
    ones: the manifest first, then the rest, then the ``backup_copies`` row is marked DELETED.
    The primary's backups and records are never touched."""
    view = workflow.view
    plan = plan_with_locks(view, workflow.catalog_view().find(), policies, now,
                           lambda record: view.key_of(record.location))
    report = CopyCleanupReport(plan, dry_run, workflow.storage)
    for decision in plan.to_delete:
        record = decision.record
        folder = view.key_of(record.location) or ""
        if not folder.endswith("/" + record.backup_id):
            report.errors.append(f"{record.backup_id}: {record.location} is not a backup folder "
                                 f"of {workflow.storage}; left as it is")
            continue
        try:
            objects = list(view.list_objects(folder + "/"))
            if not dry_run:
                manifests = [o.key for o in objects if o.key.endswith("/" + MANIFEST_NAME)]
                view.delete(manifests)
                view.delete([o.key for o in objects if o.key not in manifests])
                workflow.records.set_status(record.backup_id, CopyStatus.DELETED,
                                            reason=f"{deleted_by}: {decision.reason}")
        except ObjectLocked as exc:  # S3's clock says the date is still ahead: next run
            report.locked.append(f"{record.backup_id}: {exc}")
            log.warning("kept the copy of backup %s: %s", record.backup_id, exc)
            continue
        except BackupError as exc:
            report.errors.append(f"{record.backup_id}: {exc}")
            log.error("could not remove the copy of backup %s: %s", record.backup_id, exc)
            continue
        report.removed.append(record.backup_id)
        report.bytes_freed += sum(o.size for o in objects)
        log.info("%s the copy of backup %s in %s: %s", "would remove" if dry_run else "removed",
                 record.backup_id, workflow.storage, decision.reason)
    return report


def copy_policies(config: BackupConfig, settings: CopySettings) -> list[RetentionPolicy]:
    """The copy's policies: ``BACKUP_COPY_RETENTION_DAYS``, ``_KEEP_LAST`` and ``_GFS``, each
    the primary's when unset."""
    update = {name: value for name, value in (
        ("retention_days", settings.retention_days), ("keep_last", settings.keep_last),
        ("gfs", settings.gfs)) if value is not None}
    return policies_from_config(config.model_copy(update=update))
