"""EngineHook: a :class:`BackupEngine` whose storage and connections come from Airflow.

The single seam between Airflow and core: every operator and sensor gets its workflow from
this engine.
"""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupConfig, CopySettings
from amprenta_backup.hooks.postgres import PostgresTargetHook
from amprenta_backup.hooks.storage import BackupStorageHook


def resolve_connection(conn_id: str, database: str | None) -> PgConnInfo:
    """``(conn_id, database) -> PgConnInfo`` through Airflow's connections."""
    return PostgresTargetHook(conn_id).get_conninfo(database)


class EngineHook(BaseHook):
    """Builds the engine from config (``BACKUP_*``) and Airflow connections.

    :param config: backup settings; read from the environment when omitted
    """

    hook_name = "amprenta-backup engine"

    def __init__(self, config: BackupConfig | None = None) -> None:
        super().__init__()
        self.config = config or BackupConfig.from_env()

    @cached_property
    def engine(self) -> BackupEngine:
        storage_hook = BackupStorageHook(self.config)
        catalog_hook = PostgresTargetHook(self.config.catalog_conn_id,
                                          setting="BACKUP_CATALOG_CONN_ID")
        copy = CopySettings.from_env()
        copy_hook = BackupStorageHook(self.config, copy.storage) if copy.storage else None
        return BackupEngine(self.config, storage=storage_hook.get_storage(),
                            catalog=Catalog(catalog_hook.get_conninfo()),
                            resolve=resolve_connection,
                            s3_credentials=storage_hook.s3_credentials, copy=copy,
                            copy_storage=copy_hook.get_storage if copy_hook else None)
