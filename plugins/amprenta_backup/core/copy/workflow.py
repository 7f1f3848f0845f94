"""The second copy as one workflow: copy a backup, read from the copy (or fall back to it),
apply the copy's own retention and check how far it lags behind the primary."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.copy.copier import Copier, CopyOutcome
from amprenta_backup.core.copy.records import CopyCatalog, CopyRecords, CopyStatus
from amprenta_backup.core.errors import (
    ChecksumMismatch,
    ConfigError,
    PreconditionError,
    StorageError,
)
from amprenta_backup.core.health import CheckResult, Level
from amprenta_backup.core.layout import check_backup_id
from amprenta_backup.core.models import RESTORABLE, BackupRecord, RunContext
from amprenta_backup.core.settings import BackupConfig, CopySettings
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.storage.factory import storage_from_config
from amprenta_backup.core.storage.rebased import RebasedStorage

if TYPE_CHECKING:
    from amprenta_backup.core.copy.retention import CopyCleanupReport

log = logging.getLogger(__name__)

NOT_CONFIGURED = ("no copy storage is configured; set BACKUP_COPY_STORAGE_TYPE (local or s3) "
                  "and its BACKUP_COPY_* settings")

T = TypeVar("T")
LATEST = "latest"
FALLBACK_ERRORS = (StorageError, ChecksumMismatch)
"""Failures of the primary that reading the copy can get past: unreachable, or damaged."""


class CopyWorkflow:
    """The copy storage of ``BACKUP_COPY_*`` beside the primary.

    :param settings: the copy's settings (its storage must be set)
    :param primary: the primary storage
    :param copy: the copy's storage, as configured (its own root and credentials)
    :param catalog: the catalog of both
    :param prefix: the primary's key prefix (``BACKUP_S3_PREFIX``)
    """

    def __init__(self, settings: CopySettings, primary: Storage, copy: Storage,
                 catalog: Catalog, prefix: str) -> None:
        if settings.storage is None:
            raise ConfigError(NOT_CONFIGURED)
        self.settings = settings
        self.primary = primary
        self.view = RebasedStorage(copy, prefix, settings.storage.prefix)
        self.catalog = catalog
        self.records = CopyRecords(catalog, self.view.uri(self.view.seen))
        if self.records.storage == primary.uri(self.view.seen):
            raise ConfigError(f"the copy storage {self.records.storage} is the primary storage; "
                              "point BACKUP_COPY_* at another bucket, endpoint or folder")

    @property
    def storage(self) -> str:
        """URI of the copy's root, as recorded in ``backup_copies``."""
        return self.records.storage

    def copy(self, backup_id: str, target: str | None = None,
             run: RunContext | None = None) -> CopyOutcome:
        """Copy one backup (``latest``: the newest completed one of ``target``)."""
        return Copier(self.primary, self.view, self.catalog).run(
            self.backup(backup_id, target), run)

    def catch_up(self, target: str, limit: int = 5, run: RunContext | None = None
                 ) -> list[CopyOutcome]:
        """Copy the newest ``limit`` completed backups of ``target`` that have no verified
        copy (a copy task that failed, a copy storage that was down): the lag heals itself."""
        done = self.catalog.find(target=target, statuses=RESTORABLE, limit=limit)
        copied = {c.backup_id for c in self.records.find(
            [r.backup_id for r in done], statuses=[CopyStatus.VERIFIED, CopyStatus.COPYING])}
        copier = Copier(self.primary, self.view, self.catalog)
        return [copier.run(r, run) for r in done if r.backup_id not in copied]

    def backup(self, backup_id: str, target: str | None = None) -> BackupRecord:
        """The primary's record of ``backup_id`` (or the latest of ``target``)."""
        if backup_id != LATEST:
            check_backup_id(backup_id)
        else:
            found = self.catalog.find(target=target, statuses=RESTORABLE, limit=1)
            if not found:
                raise PreconditionError(f"no completed backup{f' of {target}' if target else ''}"
                                        " to copy; `amprenta-backup list` shows the backups")
            return found[0]
        record = self.catalog.get(backup_id)
        if record is None:
            raise PreconditionError(f"no backup {backup_id!r} in {self.catalog.describe()}; "
                                    "`amprenta-backup list` shows the ids")
        return record

    def sources(self) -> tuple[Storage, Catalog]:
        """The storage and catalog to read backups from the copy with."""
        return self.view, self.catalog_view()

    def catalog_view(self) -> CopyCatalog:
        """The catalog as the copy sees it (each record with its copy's status and place)."""
        return CopyCatalog(self.catalog, self.records)

    def read(self, what: str, from_copy: bool, primary: Callable[[], T],
             action: Callable[[Storage, Catalog], T]) -> T:
        """``primary()``; if the primary cannot be read or its backup is damaged, ``action``
        on the copy, saying so in the log. ``from_copy``: on the copy only."""
        if not from_copy:
            try:
                return primary()
            except FALLBACK_ERRORS as exc:
                log.warning("%s from the primary storage %s failed (%s); falling back to the "
                            "copy in %s", what, self.primary.uri(""), exc, self.storage)
        else:
            log.info("%s from the copy in %s", what, self.storage)
        return action(*self.sources())

    def copy_wal(self, target: str) -> list[str]:
        """Copy the archived WAL of ``target`` (PITR) that the copy lacks; the keys copied."""
        from amprenta_backup.core.wal.archive import wal_prefix

        copied = Copier(self.primary, self.view, self.catalog).sync(
            wal_prefix(self.view.seen, target))
        log.info("%d WAL files of %s copied to %s", len(copied), target, self.storage)
        return copied

    def retention(self, config: BackupConfig, deleted_by: str, dry_run: bool = False,
                  now: datetime | None = None) -> CopyCleanupReport:
        """Apply ``BACKUP_COPY_RETENTION_*`` to the copy storage (never to the primary)."""
        from amprenta_backup.core.copy.retention import clean_copies, copy_policies

        return clean_copies(self, copy_policies(config, self.settings),
                            now or self.catalog.now(), deleted_by, dry_run)

    def lag(self, targets: list[str], as_of: datetime) -> list[CheckResult]:
        """Per target: a warning when its newest completed backup has had no verified copy
        for longer than ``BACKUP_COPY_MAX_LAG_HOURS``."""
        limit = timedelta(hours=self.settings.max_lag_hours)
        results: list[CheckResult] = []
        for target in targets:
            done = [r for r in self.catalog.find(target=target, statuses=RESTORABLE, limit=20)
                    if r.completed_at and r.completed_at <= as_of]
            copied = {c.backup_id for c in self.records.find(
                [r.backup_id for r in done], statuses=[CopyStatus.VERIFIED])}
            results.append(_lag_result(target, done, copied, as_of, limit, self.storage))
        return results


def _lag_result(target: str, done: list[BackupRecord], copied: set[str], as_of: datetime,
                limit: timedelta, storage: str) -> CheckResult:
    if not done:
        return CheckResult("copy_lag", Level.OK, "no completed backup to copy yet",
                           target=target)
    behind = [r for r in done if r.backup_id not in copied]
    newest_copied = next((r for r in done if r.backup_id in copied), None)
    if not behind or behind[0] is not done[0]:
        return CheckResult("copy_lag", Level.OK, f"newest backup {done[0].backup_id} is "
                           f"copied to {storage}", target=target)
    assert done[0].completed_at is not None
    lag = as_of - done[0].completed_at
    since = (f"the newest copied is {newest_copied.backup_id}" if newest_copied
             else "no backup of it is copied")
    detail = (f"newest backup {done[0].backup_id} has no verified copy in {storage} after "
              f"{lag.total_seconds() / 3600:.1f} h; {since}")
    if lag <= limit:
        return CheckResult("copy_lag", Level.OK, detail, target=target)
    return CheckResult("copy_lag", Level.WARNING, detail + f" (more than "
                       f"BACKUP_COPY_MAX_LAG_HOURS={limit.total_seconds() / 3600:g})",
                       "look at the copy tasks of daily_backup, or run "
                       f"`amprenta-backup copy latest --target {target}`", target=target)


def configured(settings: CopySettings, given: Storage | Callable[[], Storage] | None,
               primary: Storage, catalog: Catalog, prefix: str) -> CopyWorkflow | None:
    """The copy ``settings`` describe, or None without a copy storage; ``given`` (a storage,
    or a function that makes one when first needed) instead of the configured one."""
    if settings.storage is None:
        return None
    storage = (given() if callable(given) else given) or storage_from_config(settings.storage)
    return CopyWorkflow(settings, primary, storage, catalog, prefix)


def required(copies: CopyWorkflow | None) -> CopyWorkflow:
    """``copies``, or a ConfigError that says how to configure a copy."""
    if copies is None:
        raise ConfigError(NOT_CONFIGURED)
    return copies
