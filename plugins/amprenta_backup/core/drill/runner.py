"""Restore drills: pick a backup, restore it into a scratch database through the restore code,
check the data itself, hold the recovery time against the objective, and record the evidence.

Steps (one Airflow task each): :meth:`DrillRunner.prepare` picks the backup and claims the
scratch name; :meth:`~DrillRunner.restore` restores it (``mode=new_database``, the checksum
read first); :meth:`~DrillRunner.check` runs the checks; :meth:`~DrillRunner.teardown` drops
the scratch database, whatever happened, and closes the record. Every step writes the
``drill_runs`` row and the report, so the evidence survives any step failing.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.connections import Resolver
from amprenta_backup.core.drill import record as drill_record
from amprenta_backup.core.drill import scratch as drill_scratch
from amprenta_backup.core.drill.checks import run_checks
from amprenta_backup.core.drill.record import DrillRecord
from amprenta_backup.core.drill.report import publish
from amprenta_backup.core.encryption import KeyService
from amprenta_backup.core.errors import (
    BackupError,
    ChecksumMismatch,
    PreconditionError,
)
from amprenta_backup.core.health import CheckResult, Level
from amprenta_backup.core.models import (
    RESTORABLE,
    BackupRecord,
    Manifest,
    RunContext,
    Status,
    utcnow,
)
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.plan import load_manifest
from amprenta_backup.core.restore.request import NEW_DATABASE, RestoreRequest
from amprenta_backup.core.restore.run import Restorer, RestoreResult
from amprenta_backup.core.settings import (
    LATEST,
    RANDOM,
    BackupTarget,
    DrillSettings,
)
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.verify import VerifyResult, folder_of, record_result

log = logging.getLogger(__name__)

STRATEGIES = (LATEST, RANDOM)


@dataclass(frozen=True)
class Pick:
    """The backup a drill restores, and the window it was picked from."""

    record: BackupRecord
    window_start: datetime | None
    window_end: datetime


def pick_backup(catalog: Catalog, target: str, strategy: str = LATEST, window_days: int = 30,
                interval_start: datetime | None = None, interval_end: datetime | None = None,
                rng: random.Random | None = None, now: datetime | None = None,
                storage: Storage | None = None) -> Pick:
    """The backup to drill: ``latest`` restorable one started in ``[interval_start,
    interval_end)`` (a backfilled run drills its own interval), or a ``random`` one started in
    the ``window_days`` before ``interval_end``. Without an interval, the window ends ``now``.
    With ``storage`` (the configured one), backups stored elsewhere are left out.
    """
    end = interval_end or now or utcnow()
    start = interval_start if strategy == LATEST else end - timedelta(days=window_days)
    found = catalog.find(target=layout.check_target_name(target), statuses=RESTORABLE,
                         before=end, started_after=start,
                         limit=1 if strategy == LATEST and storage is None else None)
    elsewhere = [r for r in found if storage and storage.key_of(r.location) is None]
    found = [r for r in found if r not in elsewhere]
    root = storage.uri("") if storage else ""
    outside = (f" in the configured storage {root} ({len(elsewhere)} more are stored "
               f"elsewhere, e.g. {elsewhere[0].location})" if elsewhere else "")
    if not found:
        since = f"between {start:%Y-%m-%d %H:%M} and" if start else "before"
        raise PreconditionError(
            f"target {target} has no completed backup{outside} started {since} "
            f"{end:%Y-%m-%d %H:%M} UTC, so there is nothing to drill; check that daily_backup "
            "runs (`amprenta-backup list`)")
    if elsewhere:
        log.warning("target %s: %d backups stored outside the configured storage %s (e.g. "
                    "%s) are not drilled", target, len(elsewhere), root, elsewhere[0].location)
    chosen = found[0] if strategy == LATEST else (rng or random.Random()).choice(found)
    return Pick(chosen, start, end)


def drill_id_for(run: RunContext, target: str) -> str:
    """The drill's id: the same for every task and try of one Airflow run and target."""
    key = f"drill/{run.dag_id}/{run.run_id}/{target}" if run.run_id else None
    return layout.make_backup_id(run.logical_date or utcnow(), key)


class DrillRunner:
    """Runs the steps of restore drills over one storage and catalog.

    :param storage: where the backups are (and the reports go)
    :param catalog: where the backup records and ``drill_runs`` are
    :param resolve: ``(conn_id, database) -> PgConnInfo``
    :param settings: drill settings; read from ``BACKUP_DRILL_*`` when omitted
    :param keys: opens encrypted backups
    """

    def __init__(self, storage: Storage, catalog: Catalog, resolve: Resolver,
                 settings: DrillSettings | None = None, keys: KeyService | None = None) -> None:
        self.storage = storage
        self.catalog = catalog
        self.resolve = resolve
        self.keys = keys
        self.settings = settings or DrillSettings.from_env()

    def prepare(self, target: BackupTarget, run: RunContext,
                interval: tuple[datetime | None, datetime | None] = (None, None),
                drill_id: str | None = None, backup_id: str | None = None) -> DrillRecord:
        """Pick the backup (or take ``backup_id``) and make sure the scratch name is free;
        record the drill.

        :param interval: the run's data interval; backups are picked from it
        :param drill_id: default :func:`drill_id_for` the run and target
        :param backup_id: drill this backup of ``target`` instead of picking one
        """
        drill_id = drill_id or drill_id_for(run, target.name)
        start, end = interval
        record = DrillRecord(
            drill_id=drill_id, target=target.name, strategy=self.settings.strategy,
            window_end=end or run.logical_date or utcnow(),
            drill_conn_id=self.settings.conn_id or target.conn_id,
            scratch_database=drill_scratch.scratch_name(drill_id),
            rto_objective_seconds=self.settings.rto_seconds, started_at=utcnow(),
            dag_id=run.dag_id, run_id=run.run_id, logical_date=run.logical_date)
        try:
            if backup_id:
                chosen, record.strategy = self.given(target.name, backup_id), "given"
            else:
                pick = pick_backup(self.catalog, target.name, self.settings.strategy,
                                   self.settings.window_days, start, record.window_end,
                                   random.Random(drill_id), storage=self.storage)
                chosen, record.window_start = pick.record, pick.window_start
            record.backup_id, record.backup_location = chosen.backup_id, chosen.location
            conn = self.resolve(record.drill_conn_id, None)
            record.drill_server = f"{conn.user}@{conn.host}:{conn.port}"
            drill_scratch.claim(conn, record.scratch_database, drill_id)
        except BackupError as exc:
            self._fail(record, CheckResult("setup", Level.CRITICAL, str(exc)))
            raise
        drill_record.save(self.catalog, record)
        log.info("drill %s: backup %s of %s (%s) into %s on %s", drill_id, record.backup_id,
                 target.name, record.strategy, record.scratch_database, record.drill_server)
        return record

    def restore(self, drill_id: str) -> DrillRecord:
        """Restore the picked backup into the scratch database through :class:`Restorer`."""
        record = self.load(drill_id)
        if record.backup_id is None:
            raise PreconditionError(f"drill {drill_id} picked no backup; see its setup step")
        record.checks, record.error, record.passed = [], None, None
        record.restore_started_at = utcnow()
        try:
            conn = self.resolve(record.drill_conn_id, None)
            request = RestoreRequest(backup_id=record.backup_id,
                                     database=record.scratch_database,
                                     target_conn_id=record.drill_conn_id, mode=NEW_DATABASE,
                                     no_owner=self.settings.no_owner)
            drill_scratch.claim(conn, record.scratch_database, drill_id)
            result = Restorer(self.storage, self.catalog, self.resolve, self.keys).run(
                request, progress=self._marker(conn, record))
        except ChecksumMismatch as exc:
            self.catalog.set_status(record.backup_id, Status.CORRUPT,
                                    f"restore drill {drill_id}: {exc}")
            self._fail(record, CheckResult("checksum", Level.CRITICAL, str(exc),
                                           "restore from another backup; find out what damaged "
                                           "this one"))
            raise
        except BackupError as exc:
            self._fail(record, CheckResult("restore", Level.CRITICAL, str(exc)))
            raise
        record.scratch_created = drill_scratch.mark(conn, record.scratch_database, drill_id)
        record.restore_finished_at = utcnow()
        record.restore_seconds = result.seconds
        for check in _restore_checks(result, record.target):
            record.set_check(check)
        drill_record.save(self.catalog, record)  # the restorer logged its outcome and time
        return record

    def check(self, drill_id: str) -> DrillRecord:
        """Check the restored data, measure the RTO, decide; record and publish the result."""
        record = self.load(drill_id)
        if record.restore_finished_at is None or record.failures or not record.backup_id:
            raise PreconditionError(f"drill {drill_id}: the restore did not complete, there is "
                                    "nothing to check")
        started = time.monotonic()
        try:
            manifest = load_manifest(self.storage, self._backup(record.backup_id))
            conn = self.resolve(record.drill_conn_id, record.scratch_database)
            results = run_checks(conn, manifest, self.settings.assertions, record.target,
                                 self.settings.statement_timeout)
        except BackupError as exc:
            results = [CheckResult("checks", Level.CRITICAL, str(exc), target=record.target)]
        record.checks_seconds = round(time.monotonic() - started, 3)
        record.checks_finished_at = utcnow()
        for result in results:
            record.set_check(result)
        record.rto_seconds = round((record.restore_seconds or 0.0) + record.checks_seconds, 3)
        record.set_check(_rto_check(record))
        record.decide()
        self._publish(record)
        drill_record.save(self.catalog, record)
        (log.info if record.passed else log.error)("%s", record.summary)
        if record.passed:
            self._verified(record, manifest)
        return record

    def _verified(self, record: DrillRecord, manifest: Manifest) -> None:
        """A passed drill read the whole backup (sha256 and size first, then every byte
        through pg_restore) and checked the result: record it as a verification (VERIFIED)."""
        assert record.backup_id is not None
        backup = self._backup(record.backup_id)
        record_result(self.catalog, VerifyResult(
            backup_id=backup.backup_id, target=backup.target,
            location=self.storage.uri(folder_of(self.storage, backup)),
            checked=("sha256", "size", "archive", f"restore drill {record.drill_id}"),
            expected_sha256=manifest.sha256, actual_sha256=manifest.sha256,
            stored_bytes=manifest.stored_bytes, raw_bytes=manifest.raw_bytes,
            seconds=record.restore_seconds or 0.0),
            RunContext(dag_id=record.dag_id, run_id=record.run_id))
        log.info("backup %s is VERIFIED: restore drill %s read and checked all of it",
                 backup.backup_id, record.drill_id)

    def teardown(self, drill_id: str) -> DrillRecord | None:
        """Drop the scratch database if this drill made it, close the record, publish the
        report; None if setup never recorded the drill."""
        record = drill_record.load(self.catalog, drill_id)
        if record is None:
            log.info("drill %s was never recorded: nothing to tear down", drill_id)
            return None
        conn = self.resolve(record.drill_conn_id, None)
        outcome = drill_scratch.drop_if_owned(conn, record.scratch_database, drill_id)
        if outcome == drill_scratch.DROPPED:
            record.scratch_dropped_at = utcnow()
        elif outcome == drill_scratch.FOREIGN and record.passed is None:
            record.error = (f"database {record.scratch_database} exists but was not created "
                            "by this drill; it was left untouched")
        unfinished = record.passed is None
        if unfinished:
            record.error = record.error or "the drill did not finish: the restore or the " \
                "checks never reported (a worker lost or killed?)"
            record.decide()
        record.finished_at = utcnow()
        self._publish(record)
        drill_record.save(self.catalog, record)
        log.info("drill %s: scratch database %s %s%s", drill_id, record.scratch_database,
                 outcome, f"; {record.summary}" if unfinished else "")  # else logged already
        return record

    def run(self, target: BackupTarget, run: RunContext,
            interval: tuple[datetime | None, datetime | None] = (None, None),
            backup_id: str | None = None) -> DrillRecord:
        """Every step in one go (the CLI): a failed step is recorded (and logged, once), the
        teardown always runs.

        :param backup_id: drill this backup of ``target`` instead of picking one
        """
        drill_id = drill_id_for(run, target.name)
        try:
            self.prepare(target, run, interval, drill_id, backup_id)
            self.restore(drill_id)
            self.check(drill_id)
        except BackupError:
            pass  # the step that failed recorded and logged why; the report says it again
        finally:
            record = self.teardown(drill_id)
        if record is None:
            raise PreconditionError(f"drill {drill_id} of {target.name} was not recorded")
        return record

    def history(self, target: str | None = None, limit: int = 20) -> list[DrillRecord]:
        """The drills recorded in the catalog, newest first, optionally of one target."""
        return drill_record.history(self.catalog, target and layout.target_name(target), limit)

    def load(self, drill_id: str) -> DrillRecord:
        record = drill_record.load(self.catalog, drill_id)
        if record is None:
            raise PreconditionError(f"no drill {drill_id} in the catalog's drill_runs; its "
                                    "setup step did not run")
        return record

    def target_of(self, backup_id: str) -> str:
        """The target a backup belongs to (PreconditionError if the catalog has no record)."""
        return self._backup(backup_id).target

    def given(self, target: str, backup_id: str) -> BackupRecord:
        """Backup ``backup_id`` of ``target``, if a drill may restore it; else one sentence
        saying why not (another target's, not restorable, outside the configured storage)."""
        backup = self._backup(backup_id)
        if backup.target != target:
            raise PreconditionError(f"backup {backup_id} is a backup of {backup.target}, not "
                                    f"of {target}")
        if backup.status not in RESTORABLE:
            raise PreconditionError(f"backup {backup_id} of {target} is {backup.status}, so a "
                                    "drill cannot restore it; pick a completed or verified one "
                                    "(`amprenta-backup list`)")
        folder_of(self.storage, backup)  # outside the configured storage: its one sentence
        return backup

    def _backup(self, backup_id: str) -> BackupRecord:
        backup = self.catalog.get(backup_id)
        if backup is None:
            raise PreconditionError(f"backup {backup_id} is not in the catalog; pick one from "
                                    "`amprenta-backup list`")
        return backup

    def _marker(self, conn: PgConnInfo, record: DrillRecord
                ) -> Callable[[str, int], Callable[[int], None] | None]:
        """A progress factory that marks the scratch database as the drill's as soon as the
        restore has created it (the ``restore`` phase), before any data arrives."""
        def factory(phase: str, _total: int) -> None:
            if phase == "restore" and not record.scratch_created:
                record.scratch_created = drill_scratch.mark(conn, record.scratch_database,
                                                            record.drill_id)
                drill_record.save(self.catalog, record)
        return factory

    def _fail(self, record: DrillRecord, check: CheckResult) -> None:
        record.set_check(CheckResult(check.name, check.status, check.detail, check.hint,
                                     record.target))
        record.decide()
        self._publish(record)
        drill_record.save(self.catalog, record)
        log.error("%s", record.summary)

    def _publish(self, record: DrillRecord) -> None:
        if not record.backup_id:
            return
        try:
            publish(self.storage, folder_of(self.storage, self._backup(record.backup_id)),
                    record)
        except BackupError as exc:
            log.error("drill %s: the report could not be stored: %s", record.drill_id, exc)


def _restore_checks(result: RestoreResult, target: str) -> list[CheckResult]:
    plan = result.plan
    sha = f"sha256 {plan.sha256[:12]}... and" if plan.sha256 else "size (no sha256 recorded);"
    checksum = CheckResult(
        "checksum", Level.OK if plan.sha256 else Level.WARNING,
        f"{sha} {plan.stored_bytes} stored bytes match the manifest, read in "
        f"{result.verify_seconds:.1f} s before the restore",
        "" if plan.sha256 else "turn BACKUP_CHECKSUM_ENABLED on", target)
    rows = sum(got or 0 for got, _ in result.row_counts.values())
    restored = CheckResult("restore", Level.OK, f"pg_restore into {plan.database} on "
                           f"{plan.target_server}: {len(result.row_counts)} tables, {rows} rows "
                           f"in {result.restore_seconds:.1f} s", target=target)
    return [checksum, restored]


def _rto_check(record: DrillRecord) -> CheckResult:
    rto, objective = record.rto_seconds or 0.0, record.rto_objective_seconds
    detail = (f"{rto:.1f} s (restore {record.restore_seconds or 0:.1f} s + checks "
              f"{record.checks_seconds or 0:.1f} s) against an objective of {objective:g} s")
    if rto > objective:
        return CheckResult("rto", Level.CRITICAL, detail + f": {rto - objective:.1f} s over",
                           "restore faster (storage throughput, a closer drill server) or set "
                           "a realistic BACKUP_DRILL_RTO_SECONDS", record.target)
    return CheckResult("rto", Level.OK, detail, target=record.target)
