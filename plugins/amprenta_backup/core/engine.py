"""BackupEngine: the spec's Python API and the one way into core, usable without Airflow.

The engine imports a workflow's modules only when that workflow is asked for: ``amprenta-wal``
(PostgreSQL's ``archive_command`` and ``restore_command``) gets its WAL archive from here once
per segment, and must not pay for psycopg, the catalog or the restore code each time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from amprenta_backup.core.connections import Resolver, postgres_conninfo
from amprenta_backup.core.encryption import KeyService  # cryptography loads only when used
from amprenta_backup.core.encryption.setup import key_service
from amprenta_backup.core.errors import BackupError, CatalogError, ConfigError, PreconditionError
from amprenta_backup.core.export.entry import ProjectExportEntry
from amprenta_backup.core.layout import check_backup_id, target_name
from amprenta_backup.core.models import BackupRecord, RunContext, utcnow
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.entry import RestoreEntry
from amprenta_backup.core.settings import BackupConfig, BackupTarget, CopySettings, PitrSettings
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.storage.factory import storage_environment, storage_from_config
from amprenta_backup.core.wal.archive import WalArchive

if TYPE_CHECKING:  # imported where used: `amprenta-wal` builds its archive here per segment
    from amprenta_backup.core.backup.logical import BackupRunner
    from amprenta_backup.core.catalog import Catalog
    from amprenta_backup.core.copy.copier import CopyOutcome
    from amprenta_backup.core.copy.retention import CopyCleanupReport
    from amprenta_backup.core.copy.workflow import CopyWorkflow
    from amprenta_backup.core.dashboard import Dashboard
    from amprenta_backup.core.drill.runner import DrillRunner
    from amprenta_backup.core.health import CheckResult, HealthChecker
    from amprenta_backup.core.pitr.workflow import PointInTime
    from amprenta_backup.core.readback import Progress, Readback
    from amprenta_backup.core.recovery.report import RecoveryReport
    from amprenta_backup.core.recovery.run import Recovery
    from amprenta_backup.core.restore.plan import RestorePlan
    from amprenta_backup.core.restore.run import ProgressFactory, Restorer, RestoreResult
    from amprenta_backup.core.retention.cleanup import Cleanup
    from amprenta_backup.core.settings import DrillSettings
    from amprenta_backup.core.verify import VerifyResult
    from amprenta_backup.core.wal.retention import WalCleanupReport

log = logging.getLogger(__name__)
T = TypeVar("T")


class BackupEngine(ProjectExportEntry, RestoreEntry):
    """The one way into core: every workflow (backup, base backup, verify, restore, retention,
    health, drill, PITR restore and drill, WAL archive, project export) comes from here, for
    Python, the CLI and Airflow alike.

    Outside Airflow, connection ids resolve from ``AIRFLOW_CONN_<ID>`` variables; the Airflow
    adapters pass their own storage, catalog, resolver and S3 credentials built from Airflow
    connections.

    :param config: settings; read from ``BACKUP_*`` when omitted
    :param storage: storage to use instead of the configured one
    :param catalog: catalog to use instead of ``BACKUP_CATALOG_CONN_ID``'s
    :param resolve: ``(conn_id, database) -> PgConnInfo``
    :param storage_fallback: when the catalog cannot be reached, answer reads from the
        manifests in storage (:attr:`catalog_unreachable` then says why)
    :param pitr: PITR settings; read from ``BACKUP_PITR_*`` / ``BACKUP_WAL_*`` when omitted
    :param s3_credentials: ``() -> {"AWS_ACCESS_KEY_ID": ...}`` for ``amprenta-wal fetch``;
        by default those of ``AIRFLOW_CONN_<BACKUP_AWS_CONN_ID>``, if set
    :param copy: settings of the second copy; read from ``BACKUP_COPY_*`` when omitted
    :param copy_storage: the copy's storage (or a function making it) to use instead
    :param keys: encryption keys; by default those ``BACKUP_ENCRYPTION*`` names
    """

    def __init__(self, config: BackupConfig | None = None, storage: Storage | None = None,
                 catalog: Catalog | None = None, resolve: Resolver | None = None,
                 storage_fallback: bool = False, pitr: PitrSettings | None = None,
                 s3_credentials: Callable[[], dict[str, str]] | None = None,
                 copy: CopySettings | None = None,
                 copy_storage: Storage | Callable[[], Storage] | None = None,
                 keys: KeyService | None = None) -> None:
        self.config = config or BackupConfig.from_env()
        self._copy, self._copy_storage = copy, copy_storage
        self.keys = keys or key_service(self.config.encryption, self.config.storage)
        self._pitr, self._s3_credentials = pitr, s3_credentials
        self._storage = storage
        self._catalog = catalog
        self.resolve: Resolver = resolve or postgres_conninfo
        self.storage_fallback = storage_fallback
        self.catalog_unreachable: str | None = None

    @cached_property
    def storage(self) -> Storage:
        return self._storage or storage_from_config(self.config.storage)

    @cached_property
    def catalog(self) -> Catalog:
        from amprenta_backup.core.catalog import Catalog
        from amprenta_backup.core.recovery.index import StorageCatalog

        if self._catalog is not None:
            return self._catalog
        if not self.storage_fallback:
            return Catalog(self.resolve(self.config.catalog_conn_id, None))
        try:
            catalog = Catalog(self.resolve(self.config.catalog_conn_id, None))
            catalog.probe()
            return catalog
        except (CatalogError, ConfigError) as exc:
            self.catalog_unreachable = f"the catalog is unreachable ({exc})"
        # info: the caller says it (the CLI's warning), once
        log.info("%s; answering from the manifests in storage", self.catalog_unreachable)
        return StorageCatalog(self.storage, self.config.prefix, self.catalog_unreachable)

    @cached_property
    def copies(self) -> CopyWorkflow | None:
        """The second copy (``BACKUP_COPY_*``); None when no copy storage is configured."""
        settings = self._copy or CopySettings.from_env()
        if settings.storage is None:  # no copy: its modules are not even imported
            return None
        from amprenta_backup.core.copy.workflow import configured

        return configured(settings, self._copy_storage, self.storage, self.catalog,
                          self.config.prefix)

    def copy_workflow(self) -> CopyWorkflow:  # :attr:`copies`, or a ConfigError saying how
        from amprenta_backup.core.copy.workflow import required

        return required(self.copies)

    def copy_backup(self, backup_id: str, target: str | None = None,
                    run: RunContext | None = None) -> CopyOutcome:
        """Copy one backup (``latest``: the newest of ``target``) to the copy storage and
        prove its sha256 there; recorded in the catalog's ``backup_copies``."""
        return self.copy_workflow().copy(backup_id, target, run)

    def copy_retention(self, deleted_by: str, dry_run: bool = False,
                       now: datetime | None = None) -> CopyCleanupReport:
        """Apply ``BACKUP_COPY_RETENTION_*`` to the copy storage (never to the primary)."""
        return self.copy_workflow().retention(self.config, deleted_by, dry_run, now)

    def _read(self, what: str, from_copy: bool, action: Callable[[Storage, Catalog], T]) -> T:
        """``action`` on the primary, falling back to the copy (if any) when the primary is
        unreachable or its backup damaged; with ``from_copy``, on the copy only."""
        copies = self.copy_workflow() if from_copy else self.copies
        if copies is None:
            return action(self.storage, self.catalog)
        return copies.read(what, from_copy, lambda: action(self.storage, self.catalog), action)

    def conninfo(self, target: BackupTarget) -> PgConnInfo:
        return self.resolve(target.conn_id, target.database)

    def runner(self) -> BackupRunner:
        """Logical backups (pg_dump) of the configured targets."""
        from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings

        return BackupRunner(self.storage, self.catalog,
                            BackupSettings.from_config(self.config, self.keys))

    def retention(self) -> Cleanup:
        """Retention: the policies of ``BACKUP_RETENTION_*`` applied to storage and catalog."""
        from amprenta_backup.core.retention.cleanup import Cleanup
        from amprenta_backup.core.retention.policies import policies_from_config

        return Cleanup(self.storage, self.catalog, policies_from_config(self.config),
                       self.config.prefix, self.heartbeat_timeout)

    def drills(self, settings: DrillSettings | None = None,
               from_copy: bool = False) -> DrillRunner:
        """Restore drills (``BACKUP_DRILL_*`` unless ``settings`` are given); ``from_copy``
        drills the second copy's backups."""
        from amprenta_backup.core.drill.runner import DrillRunner
        from amprenta_backup.core.settings import DrillSettings

        return DrillRunner(*self._sources(from_copy), self.resolve,
                           settings or DrillSettings.from_env(), self.keys)

    def _sources(self, from_copy: bool) -> tuple[Storage, Catalog]:
        """The storage and catalog to read backups from: the primary's, or the copy's."""
        return self.copy_workflow().sources() if from_copy else (self.storage, self.catalog)

    def health_checker(self) -> HealthChecker:
        """The checks of storage, catalog, configured targets and their backup records."""
        from amprenta_backup.core.health import HealthChecker, RtoObjective
        from amprenta_backup.core.settings import DrillSettings

        config, drills = self.config, DrillSettings.from_env()
        rto = RtoObjective(drills.rto_seconds, drills.forecast_days) \
            if drills.forecast_days else None
        return HealthChecker(self.storage, self.catalog, config.targets, self.conninfo,
                             config.health_max_age_hours, prefix=config.prefix,
                             heartbeat_timeout=self.heartbeat_timeout, rto=rto)

    @property
    def heartbeat_timeout(self) -> timedelta:
        """How long a RUNNING backup may be silent before it counts as abandoned."""
        return timedelta(seconds=self.config.heartbeat_timeout_seconds)

    def health(self, as_of: datetime | None = None) -> list[CheckResult]:
        """Every health check: backups as of ``as_of`` (default: now by the catalog server's
        clock), then WAL archiving now (if PITR is set), then the copy's lag (if any)."""
        results = self.health_checker().run(as_of) + self.wal_health()
        if self.copies is not None:
            results += self.copies.lag([t.name for t in self.config.targets],
                                       as_of or self.catalog.now_or_estimate())
        return results

    def save_health(self, results: list[CheckResult], as_of: datetime,
                    run_id: str | None = None) -> None:
        """Store health results in the catalog's ``health_checks`` (dashboards read them)."""
        from amprenta_backup.core.health import save_results

        save_results(self.catalog, results, as_of, run_id)

    def wal_health(self) -> list[CheckResult]:
        """The WAL checks of ``BACKUP_PITR_CONN_ID`` now; none when PITR is not configured."""
        from amprenta_backup.core.health import CheckResult, Level

        if self._pitr is None and not PitrSettings.configured():
            return []
        try:
            pitr = self.pitr
            conn = pitr.cluster_conninfo()
        except BackupError as exc:
            return [CheckResult("wal_settings", Level.CRITICAL, str(exc),
                                "fix BACKUP_PITR_CONN_ID / BACKUP_WAL_TARGET")]
        return pitr.wal_health(utcnow(), conn)

    @cached_property
    def pitr(self) -> PointInTime:
        """Base backups, restores to a time, PITR drills and WAL of ``BACKUP_PITR_CONN_ID``."""
        from amprenta_backup.core.pitr.workflow import PointInTime

        settings = self._pitr or PitrSettings.from_env()
        settings.check_distinct([t.name for t in self.config.targets])
        return PointInTime(settings, self.storage, self.catalog, self.config.prefix,
                           self.resolve, self.fetch_env, self.heartbeat_timeout, self.keys)

    def wal_archive(self, target: str, level: int = 1) -> WalArchive:
        """The WAL archive of ``target`` in the configured storage."""
        return WalArchive(self.storage, self.config.prefix, target, level, self.keys)

    def wal_retention(self, target: str, dry_run: bool = False) -> WalCleanupReport:
        """Remove archived WAL of ``target`` that no stored base backup needs."""
        from amprenta_backup.core.wal.retention import clean_wal

        return clean_wal(self.wal_archive(target), dry_run=dry_run)

    def metric(self, name: str, days: int, target: str | None = None) -> Any:
        """One of the spec's metrics: ``success-rate``, ``size-duration``, ``storage-trend``."""
        return self.dashboard().metric(name, days, target)

    def dashboard(self) -> Dashboard:
        """The dashboard's figures over the catalog (the page, the JSON API and metrics)."""
        from amprenta_backup.core.dashboard import Dashboard
        return Dashboard.configured(self.catalog, self.config)

    def fetch_env(self) -> dict[str, str]:
        """Storage, encryption (keyring included) and S3 settings for ``amprenta-wal fetch``."""
        given = self._s3_credentials if self.config.storage.storage_type == "s3" else None
        env = storage_environment(self.config.storage, given() if given else None)
        return {**env, **self.config.encryption.to_env(), **self.keys.connection_env()}

    def list_backups(self, limit: int = 10, target: str | None = None) -> list[BackupRecord]:
        """The newest backup records, newest first."""
        return self.catalog.find(target=target and target_name(target), limit=limit)

    def get_backup(self, backup_id: str, catalog: Catalog | None = None) -> BackupRecord:
        """One record, or a PreconditionError that says how to find valid ids."""
        catalog = catalog or self.catalog
        record = catalog.get(backup_id)
        if record is None:
            raise PreconditionError(
                f"no backup {backup_id!r} in {catalog.describe()}; `amprenta-backup list` "
                "shows the ids (or `amprenta-backup rebuild-catalog` if the catalog was lost)"
            )
        return record

    def verify(self, backup_id: str, run: RunContext | None = None,
               progress: Progress | None = None, from_copy: bool = False) -> VerifyResult:
        """Read one backup back whole; records VERIFIED or CORRUPT and returns the details
        (``from_copy``, or the primary unreachable: of the copy, in ``backup_copies``)."""
        from amprenta_backup.core.verify import VERIFIABLE, verify_backup

        def verify(storage: Storage, catalog: Catalog) -> VerifyResult:
            record = self.get_backup(check_backup_id(backup_id), catalog)
            if record.status not in VERIFIABLE:
                raise PreconditionError(f"backup {backup_id} is {record.status}; only "
                                        "completed backups can be verified")
            storage.check_ready()
            return verify_backup(storage, catalog, record, run, progress, self.keys)

        return self._read(f"verifying backup {backup_id}", from_copy, verify)

    def pending_verification(self, started_after: datetime | None = None,
                             before: datetime | None = None, limit: int | None = None,
                             reverify_after: timedelta | None = None) -> list[BackupRecord]:
        """The backups a verify run should read back: never verified ones first, then those
        verified longer ago than ``reverify_after``."""
        from amprenta_backup.core.verify import pending

        return pending(self.catalog, started_after=started_after, before=before, limit=limit,
                       reverify_after=reverify_after)

    def verify_backup(self, backup_id: str) -> bool:
        """True if the backup is intact (the spec's API); the outcome is recorded."""
        return self.verify(backup_id).ok

    def recovery(self, kind: str = "recover", servers: Mapping[str, PgConnInfo] | None = None,
                 from_copy: bool = False) -> Recovery:
        """Whole-service recovery onto a new server (``dr_drill``: its rehearsal).

        :param servers: connection ids resolved to these servers first (a scratch cluster)
        :param from_copy: recover from the second copy's manifests and objects
        """
        from amprenta_backup.core.catalog import Catalog
        from amprenta_backup.core.recovery.run import Recovery

        try:
            catalog = self._catalog or Catalog(self.resolve(self.config.catalog_conn_id, None))
        except ConfigError:
            catalog = None  # no catalog connection defined: a new catalog on the new server
        known = dict(servers or {})

        def resolve(conn_id: str, database: str | None) -> PgConnInfo:
            if conn_id in known:
                return known[conn_id].with_database(database or "postgres")
            return self.resolve(conn_id, database)

        storage = self.copy_workflow().view if from_copy else self.storage
        return Recovery(storage, self.config.prefix, catalog, resolve, kind, self.keys)

    def save_dr_drill(self, report: RecoveryReport, server_conn_id: str,
                      objective_seconds: float) -> None:
        """Keep a DR drill in the catalog's ``drill_runs``, beside the restore drills."""
        from amprenta_backup.core.recovery.drill import save_drill

        save_drill(self.catalog, report, server_conn_id, objective_seconds)

    def restorer(self, from_copy: bool = False) -> Restorer:
        """Restores from the primary, falling back to a copy; ``from_copy``: the copy only."""
        from amprenta_backup.core.restore.run import Restorer

        if from_copy or self.copies is None:
            return Restorer(*self._sources(from_copy), self.resolve, self.keys)
        from amprenta_backup.core.copy.fallback import FallbackRestorer

        return FallbackRestorer(Restorer(self.storage, self.catalog, self.resolve, self.keys),
                                self.copies)

    def plan_restore(self, backup_id: str, target_database: str, from_copy: bool = False,
                     **options: Any) -> RestorePlan:
        """What :meth:`restore_backup` would do, checked but touching nothing."""
        from amprenta_backup.core.restore.request import RestoreRequest

        request = RestoreRequest.build(backup_id, target_database, self.config.targets, **options)
        return self.restorer(from_copy).plan(request)

    def restore_backup(self, backup_id: str, target_database: str,
                       progress: ProgressFactory | None = None, from_copy: bool = False,
                       **options: Any) -> RestoreResult:
        """Restore a backup (or ``"latest"`` of ``source_target``) into ``target_database``.

        ``options`` are the other fields of :class:`RestoreRequest`: ``target_conn_id``
        (default: the server the backup came from), ``mode`` (``new_database`` or ``replace``),
        ``confirm``, ``source_target``, ``schemas``, ``tables``, ``jobs``, ``no_owner``,
        ``dry_run``. ``from_copy``: see :meth:`restorer`.
        """
        from amprenta_backup.core.restore.request import RestoreRequest

        request = RestoreRequest.build(backup_id, target_database, self.config.targets, **options)
        return self.restorer(from_copy).run(request, progress)

    def download(self, backup_id: str, path: Path, decompress: bool = True,
                 progress: Progress | None = None, from_copy: bool = False) -> Readback:
        """Write a backup's dump to ``path`` (decompressed ``.pgc`` or as stored), proven
        intact before it appears; ChecksumMismatch if it is not (then the copy is read)."""
        from amprenta_backup.core.readback import download
        from amprenta_backup.core.restore.plan import load_manifest

        def fetch(storage: Storage, catalog: Catalog) -> Readback:
            record = self.get_backup(check_backup_id(backup_id), catalog)
            return download(storage, load_manifest(storage, record), path, decompress,
                            progress, keys=self.keys)

        return self._read(f"downloading {backup_id}", from_copy, fetch)
