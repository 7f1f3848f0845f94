"""EngineHook: storage, catalog and database settings for the operators, from Airflow."""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook

from amprenta_backup.core.backup import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.config import BackupConfig, BackupTarget
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.hooks.postgres import PostgresTargetHook
from amprenta_backup.hooks.storage import BackupStorageHook


class EngineHook(BaseHook):
    """Everything an operator needs to call the engine, built from config and connections.

    :param config: backup settings; read from the environment (``BACKUP_*``) when omitted
    """

    hook_name = "amprenta-backup engine"

    def __init__(self, config: BackupConfig | None = None) -> None:
        super().__init__()
        self.config = config or BackupConfig.from_env()

    @cached_property
    def storage(self) -> Storage:
        return BackupStorageHook(self.config).get_storage()

    @cached_property
    def catalog(self) -> Catalog:
        conn = PostgresTargetHook(self.config.catalog_conn_id, setting="BACKUP_CATALOG_CONN_ID")
        return Catalog(conn.get_conninfo())

    def conninfo(self, target: BackupTarget) -> PgConnInfo:
        return PostgresTargetHook(target.conn_id).get_conninfo(target.database)

    def runner(self) -> BackupRunner:
        return BackupRunner(self.storage, self.catalog, BackupSettings.from_config(self.config))
