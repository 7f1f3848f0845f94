"""Recovery: the whole service rebuilt on a new, empty server from storage alone.

The catalog is rebuilt from the manifests (into a new catalog database when the old one is
gone), then each target's newest VERIFIED (else COMPLETED) backup is restored into a new
database of its own name, several at once, and each is checked as the restore drill checks
it: rows against the manifest, foreign keys, CHECK constraints, sequences. The report goes
beside the backups in storage and into the catalog's ``recovery_runs``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.connections import Resolver
from amprenta_backup.core.drill.checks import run_checks
from amprenta_backup.core.encryption import KeyService
from amprenta_backup.core.errors import (
    BackupError,
    CatalogError,
    PreconditionError,
    StorageError,
)
from amprenta_backup.core.health import CheckResult, Level
from amprenta_backup.core.layout import make_backup_id
from amprenta_backup.core.models import RunContext, utcnow
from amprenta_backup.core.recovery import report as reports
from amprenta_backup.core.recovery.index import StorageCatalog
from amprenta_backup.core.recovery.plan import (
    CatalogChoice,
    DatabaseStep,
    RecoveryPlan,
    RecoveryRequest,
    check_approval,
    locate_catalog,
    make_plan,
)
from amprenta_backup.core.recovery.report import DatabaseOutcome, RecoveryReport
from amprenta_backup.core.restore.globals import restore_globals
from amprenta_backup.core.restore.properties import PropertiesResult
from amprenta_backup.core.restore.request import RestoreRequest
from amprenta_backup.core.restore.run import Restorer
from amprenta_backup.core.storage.base import Storage

log = logging.getLogger(__name__)

RECOVER, DR_DRILL = "recover", "dr_drill"


@dataclass(frozen=True)
class Planned:
    """A checked plan and where its catalog goes."""

    plan: RecoveryPlan
    choice: CatalogChoice


class Recovery:
    """Plans and runs whole-service recoveries.

    :param storage: where the backups are (the source of truth)
    :param prefix: the configured key prefix
    :param catalog: the configured catalog (None when no catalog connection is defined)
    :param resolve: ``(conn_id, database) -> PgConnInfo``
    :param kind: ``recover``, or ``dr_drill`` for a rehearsal into a scratch server
    :param keys: opens encrypted backups and globals
    """

    def __init__(self, storage: Storage, prefix: str, catalog: Catalog | None,
                 resolve: Resolver, kind: str = RECOVER, keys: KeyService | None = None
                 ) -> None:
        self.storage = storage
        self.keys = keys
        self.prefix = prefix
        self.configured = catalog
        self.resolve = resolve
        self.kind = kind

    @property
    def drill(self) -> bool:
        return self.kind == DR_DRILL

    def plan(self, request: RecoveryRequest) -> Planned:
        """What :meth:`run` would do; PreconditionError if it must be refused. Touches nothing.

        A drill rebuilds the catalog into a new catalog database on the drill server and only
        reads the catalog in use (it picks the same backups a recovery would).
        """
        server = self.resolve(request.server_conn_id, None)
        self.storage.check_ready()
        if self.drill:
            choice = CatalogChoice(Catalog(server.with_database(request.catalog_database)),
                                   False, f"create the catalog database "
                                   f"{request.catalog_database!r} on the drill server and "
                                   "rebuild it from the manifests in storage (a rehearsal: the "
                                   "catalog in use is only read)")
            index = self.reading_index()
        else:
            choice = locate_catalog(self.configured, server, request.catalog_database)
            index = choice.catalog if choice.exists else StorageCatalog(
                self.storage, self.prefix, "the catalog is rebuilt only when the recovery runs")
        catalog_conn = choice.catalog.conn
        own = (catalog_conn.dbname,) if (catalog_conn.host, catalog_conn.port) == (
            server.host, server.port) else ()
        if self.drill:  # everything the drill creates is dropped again: none of it may exist
            return Planned(make_plan(request, server, index, choice.note, fresh=own), choice)
        return Planned(make_plan(request, server, index, choice.note, own), choice)

    def reading_index(self) -> Catalog:
        """The catalog in use if it answers, else the manifests in storage."""
        if self.configured is not None:
            try:
                self.configured.probe()
                return self.configured
            except CatalogError as exc:
                reason = f"the catalog is unreachable ({exc})"
        else:
            reason = "no catalog connection is defined"
        return StorageCatalog(self.storage, self.prefix, reason)

    def run(self, request: RecoveryRequest, run: RunContext | None = None,
            planned: Planned | None = None) -> RecoveryReport:
        """Recover as planned (a dry run returns the plan only); the report says what passed.

        Every database is attempted even when another fails; the report's ``passed`` is
        False on any failure or check that is critical.
        """
        started, began = time.monotonic(), utcnow()
        planned = planned or self.plan(request)
        plan = planned.plan
        run = run or RunContext()
        report = RecoveryReport(
            recovery_id=make_backup_id(began, f"{run.dag_id}/{run.run_id}" if run.run_id
                                       else None),
            kind=self.kind, server=plan.server, server_version=plan.server_version,
            started_at=began, performed=not request.dry_run, catalog=plan.catalog,
            plan=plan.to_dict(), dag_id=run.dag_id, run_id=run.run_id)
        log.info("recovery plan:\n%s", plan.text())
        if request.dry_run:
            report.globals = self._globals(plan, dry_run=True)
            return report
        check_approval(plan)
        catalog = planned.choice.catalog
        try:
            self._rebuild(planned.choice, report, started)
            report.globals = self._globals(plan, dry_run=False)
            report.databases = self._restore_all(plan, catalog)
        except BackupError as exc:
            report.error = str(exc)
        report.finished_at = utcnow()
        report.rto_seconds = round(time.monotonic() - started, 3)
        self._record(self.configured if self.drill else catalog, report)
        log.info("%s", report.summary)
        return report

    def _rebuild(self, choice: CatalogChoice, report: RecoveryReport, started: float) -> None:
        if not choice.exists:
            choice.catalog.create_database()
        report.rebuilt_records = choice.catalog.rebuild(self.storage, self.prefix)
        report.catalog_seconds = round(time.monotonic() - started, 3)
        log.info("catalog %s: %d records rebuilt from %s", choice.catalog.describe(),
                 report.rebuilt_records, self.storage.uri(self.prefix))

    def _globals(self, plan: RecoveryPlan, dry_run: bool) -> list[str]:
        """Create the roles and tablespaces the new server lacks (existing ones are left)."""
        lines = []
        for ref in plan.globals:
            result = restore_globals(self.storage, ref, plan.conn, dry_run=dry_run,
                                     keys=self.keys)
            lines.append(result.message)
        return lines

    def _restore_all(self, plan: RecoveryPlan, catalog: Catalog) -> list[DatabaseOutcome]:
        """Plan every restore first (a missing extension, locale or role refuses them all
        before any database is created), then restore ``plan.parallel`` at once."""
        restorer = Restorer(self.storage, catalog, self.resolve, self.keys)
        requests = {step.database: RestoreRequest(
            backup_id=step.backup_id, database=step.database,
            target_conn_id=plan.request.server_conn_id) for step in plan.databases}
        refused = []
        for database, request in requests.items():
            try:
                restorer.plan(request)
            except PreconditionError as exc:
                refused.append(f"{database}: {exc}")
        if refused:
            raise PreconditionError(f"the new server {plan.server} cannot take every database, "
                                    f"so no database was created: {'; '.join(refused)}")
        with ThreadPoolExecutor(max_workers=plan.parallel,
                                thread_name_prefix="recover") as pool:
            return list(pool.map(lambda step: self._restore_one(
                restorer, requests[step.database], step), plan.databases))

    def _restore_one(self, restorer: Restorer, request: RestoreRequest, step: DatabaseStep
                     ) -> DatabaseOutcome:
        """Restore one database and run the drill's checks on it; failures go in the outcome."""
        started = time.monotonic()
        outcome = DatabaseOutcome(step.target, step.database, step.backup_id)
        try:
            result = restorer.run(request)
            outcome.rows = sum(got or 0 for got, _ in result.row_counts.values())
            outcome.checks = run_checks(result.plan.conn.with_database(step.database),
                                        result.plan.manifest, target=step.target)
            outcome.checks.append(properties_check(result.properties, step.target))
            if result.properties is not None:
                outcome.properties = list(result.properties.applied)
        except BackupError as exc:
            outcome.error = str(exc)
            log.error("recovering database %s failed: %s", step.database, exc)
        outcome.seconds = round(time.monotonic() - started, 3)
        log.info("database %s: backup %s, %d rows, %.1f s, %s", step.database, step.backup_id,
                 outcome.rows, outcome.seconds, "checks passed" if outcome.ok else "FAILED")
        return outcome

    def _record(self, catalog: Catalog | None, report: RecoveryReport) -> None:
        """The report beside the backups, then the catalog row; either may fail alone."""
        try:
            reports.publish(self.storage, self.prefix, report)
        except StorageError as exc:
            report.error = report.error or f"the report could not be written: {exc}"
        if catalog is None:
            log.warning("no catalog connection: the recovery is recorded in storage only")
            return
        try:
            reports.save(catalog, report)
        except CatalogError as exc:
            log.error("the recovery report was not recorded in the catalog: %s", exc)


def properties_check(props: PropertiesResult | None, target: str) -> CheckResult:
    """The database's properties (owner, ACL, settings ...) as backed up, as a check."""
    if props is None:
        return CheckResult("properties", Level.WARNING, "the backup records no database "
                           "properties (taken before backups held them)",
                           "take a new backup", target)
    if props.differences:
        return CheckResult("properties", Level.CRITICAL, "; ".join(props.differences),
                           "set them by hand as the backup's manifest records them", target)
    return CheckResult("properties", Level.OK, f"{len(props.applied)} set as backed up"
                       + (f"; left out {'; '.join(props.skipped)}" if props.skipped else ""),
                       target=target)
