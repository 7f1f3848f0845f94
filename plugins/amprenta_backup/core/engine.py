"""BackupEngine: the spec's Python API, usable without Airflow."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.connections import postgres_conninfo
from amprenta_backup.core.errors import CatalogError, ConfigError, PreconditionError
from amprenta_backup.core.layout import check_backup_id
from amprenta_backup.core.models import BackupRecord, RunContext
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.readback import Progress, Readback, download
from amprenta_backup.core.recovery.index import StorageCatalog
from amprenta_backup.core.recovery.run import Recovery
from amprenta_backup.core.restore.globals import GlobalsRestoreResult, globals_of, restore_globals
from amprenta_backup.core.restore.plan import RestorePlan, load_manifest
from amprenta_backup.core.restore.request import RestoreRequest
from amprenta_backup.core.restore.run import ProgressFactory, Restorer, RestoreResult
from amprenta_backup.core.settings import BackupConfig, BackupTarget
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.storage.factory import storage_from_config
from amprenta_backup.core.verify import VERIFIABLE, VerifyResult, verify_backup

log = logging.getLogger(__name__)

ConnResolver = Callable[[str, str | None], PgConnInfo]


class BackupEngine:
    """Backups, verification and restores from Python, a terminal or Airflow.

    Outside Airflow, connection ids resolve from ``AIRFLOW_CONN_<ID>`` variables; the Airflow
    adapters pass their own storage, catalog and resolver built from Airflow connections.

    :param config: settings; read from ``BACKUP_*`` when omitted
    :param storage: storage to use instead of the configured one
    :param catalog: catalog to use instead of ``BACKUP_CATALOG_CONN_ID``'s
    :param resolve: ``(conn_id, database) -> PgConnInfo``
    :param storage_fallback: when the catalog cannot be reached, answer reads from the
        manifests in storage (:attr:`catalog_unreachable` then says why)
    """

    def __init__(self, config: BackupConfig | None = None, storage: Storage | None = None,
                 catalog: Catalog | None = None, resolve: ConnResolver | None = None,
                 storage_fallback: bool = False) -> None:
        self.config = config or BackupConfig.from_env()
        self._storage = storage
        self._catalog = catalog
        self.resolve: ConnResolver = resolve or postgres_conninfo
        self.storage_fallback = storage_fallback
        self.catalog_unreachable: str | None = None

    @cached_property
    def storage(self) -> Storage:
        return self._storage or storage_from_config(self.config.storage)

    @cached_property
    def catalog(self) -> Catalog:
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
        log.warning("%s; answering from the manifests in storage", self.catalog_unreachable)
        return StorageCatalog(self.storage, self.config.prefix, self.catalog_unreachable)

    def conninfo(self, target: BackupTarget) -> PgConnInfo:
        return self.resolve(target.conn_id, target.database)

    def runner(self) -> BackupRunner:
        return BackupRunner(self.storage, self.catalog, BackupSettings.from_config(self.config))

    def list_backups(self, limit: int = 10, target: str | None = None) -> list[BackupRecord]:
        """The newest backup records, newest first."""
        return self.catalog.find(target=target, limit=limit)

    def get_backup(self, backup_id: str) -> BackupRecord:
        """One record, or a PreconditionError that says how to find valid ids."""
        record = self.catalog.get(backup_id)
        if record is None:
            raise PreconditionError(
                f"no backup {backup_id!r} in {self.catalog.describe()}; `amprenta-backup list` "
                "shows the ids (or `amprenta-backup rebuild-catalog` if the catalog was lost)"
            )
        return record

    def verify(self, backup_id: str, run: RunContext | None = None,
               progress: Progress | None = None) -> VerifyResult:
        """Read one backup back whole; records VERIFIED or CORRUPT and returns the details."""
        record = self.get_backup(check_backup_id(backup_id))
        if record.status not in VERIFIABLE:
            raise PreconditionError(f"backup {backup_id} is {record.status}; only completed "
                                    "backups can be verified")
        self.storage.check_ready()
        return verify_backup(self.storage, self.catalog, record, run, progress)

    def verify_backup(self, backup_id: str) -> bool:
        """True if the backup is intact (the spec's API); the outcome is recorded."""
        return self.verify(backup_id).ok

    def recovery(self, kind: str = "recover",
                 servers: Mapping[str, PgConnInfo] | None = None) -> Recovery:
        """Whole-service recovery onto a new server (``dr_drill``: its rehearsal).

        :param servers: connection ids resolved to these servers first (a scratch cluster)
        """
        try:
            catalog = self._catalog or Catalog(self.resolve(self.config.catalog_conn_id, None))
        except ConfigError:
            catalog = None  # no catalog connection defined: a new catalog on the new server
        known = dict(servers or {})

        def resolve(conn_id: str, database: str | None) -> PgConnInfo:
            if conn_id in known:
                return known[conn_id].with_database(database or "postgres")
            return self.resolve(conn_id, database)

        return Recovery(self.storage, self.config.prefix, catalog, resolve, kind)

    def restore_globals(self, backup_id: str, target_conn_id: str,
                        dry_run: bool = False) -> GlobalsRestoreResult:
        """Create on ``target_conn_id``'s server the roles and tablespaces of the server backup
        ``backup_id`` came from that it lacks; existing roles are left as they are."""
        record = self.get_backup(check_backup_id(backup_id))
        manifest = load_manifest(self.storage, record)
        return restore_globals(self.storage, globals_of(manifest),
                               self.resolve(target_conn_id, None), dry_run)

    def restorer(self) -> Restorer:
        return Restorer(self.storage, self.catalog, self.resolve)

    def plan_restore(self, backup_id: str, target_database: str, **options: Any) -> RestorePlan:
        """What :meth:`restore_backup` would do, checked but touching nothing."""
        request = RestoreRequest(backup_id=backup_id, database=target_database, **options)
        return self.restorer().plan(request)

    def restore_backup(self, backup_id: str, target_database: str,
                       progress: ProgressFactory | None = None, **options: Any) -> RestoreResult:
        """Restore a backup (or ``"latest"`` of ``source_target``) into ``target_database``.

        ``options`` are the other fields of :class:`RestoreRequest`: ``target_conn_id``
        (default: the server the backup came from), ``mode`` (``new_database`` or ``replace``),
        ``confirm``, ``source_target``, ``schemas``, ``tables``, ``jobs``, ``no_owner``,
        ``dry_run``.
        """
        request = RestoreRequest(backup_id=backup_id, database=target_database, **options)
        return self.restorer().run(request, progress)

    def download(self, backup_id: str, path: Path, decompress: bool = True,
                 progress: Progress | None = None) -> Readback:
        """Write a backup's dump to ``path`` (decompressed ``.pgc`` or as stored), proven
        intact before it appears; ChecksumMismatch if it is not."""
        record = self.get_backup(check_backup_id(backup_id))
        return download(self.storage, load_manifest(self.storage, record), path, decompress,
                        progress)
