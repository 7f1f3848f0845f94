"""BackupEngine: the spec's Python API, usable without Airflow."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from amprenta_backup.core.backup import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.config import BackupConfig, BackupTarget
from amprenta_backup.core.connections import postgres_conninfo
from amprenta_backup.core.errors import PreconditionError
from amprenta_backup.core.models import BackupRecord
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.storage.factory import storage_from_config

ConnResolver = Callable[[str, str | None], PgConnInfo]


class BackupEngine:
    """Backups, verification and restores from Python, a terminal or Airflow.

    Outside Airflow, connection ids resolve from ``AIRFLOW_CONN_<ID>`` variables; the Airflow
    adapters pass their own storage, catalog and resolver built from Airflow connections.

    :param config: settings; read from ``BACKUP_*`` when omitted
    :param storage: storage to use instead of the configured one
    :param catalog: catalog to use instead of ``BACKUP_CATALOG_CONN_ID``'s
    :param resolve: ``(conn_id, database) -> PgConnInfo``
    """

    def __init__(self, config: BackupConfig | None = None, storage: Storage | None = None,
                 catalog: Catalog | None = None, resolve: ConnResolver | None = None) -> None:
        self.config = config or BackupConfig.from_env()
        self._storage = storage
        self._catalog = catalog
        self.resolve: ConnResolver = resolve or postgres_conninfo

    @cached_property
    def storage(self) -> Storage:
        return self._storage or storage_from_config(self.config)

    @cached_property
    def catalog(self) -> Catalog:
        return self._catalog or Catalog(self.resolve(self.config.catalog_conn_id, None))

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
                f"no backup {backup_id!r} in the catalog; `amprenta-backup list` shows the ids "
                "(or `amprenta-backup rebuild-catalog` if the catalog was lost)"
            )
        return record
