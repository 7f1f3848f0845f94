"""EngineHook: a :class:`BackupEngine` whose storage and connections come from Airflow.

The single seam between Airflow and core: every operator and sensor gets its workflow from
this engine.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.encryption import KeyService
from amprenta_backup.core.encryption.setup import key_service
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupConfig, CopySettings
from amprenta_backup.hooks.postgres import PostgresTargetHook
from amprenta_backup.hooks.storage import BackupStorageHook


def resolve_connection(conn_id: str, database: str | None) -> PgConnInfo:
    """``(conn_id, database) -> PgConnInfo`` through Airflow's connections."""
    return PostgresTargetHook(conn_id).get_conninfo(database)


def connection_fields(conn_id: str) -> dict[str, Any]:
    """Password and extra of an Airflow connection (secrets backends included)."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConfigError(f"Airflow connection {conn_id!r} is not defined; create it under "
                          f"Admin > Connections, in the secrets backend, or as "
                          f"AIRFLOW_CONN_{conn_id.upper()}") from None
    return {"password": conn.password, "extra": conn.extra_dejson}


def encryption_keys(config: BackupConfig) -> KeyService:
    """The key service of ``BACKUP_ENCRYPTION*``: master keys from an Airflow connection, KMS
    through the amazon provider's hook on ``BACKUP_AWS_CONN_ID``."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    storage, settings = config.storage, config.encryption

    def kms() -> Any:
        hook = AwsBaseHook(aws_conn_id=storage.aws_conn_id, client_type="kms",
                           region_name=storage.s3_region)
        if settings.kms_endpoint_url:
            return hook.get_session(region_name=storage.s3_region).client(
                "kms", endpoint_url=settings.kms_endpoint_url)
        return hook.get_client_type(region_name=storage.s3_region)

    return key_service(settings, storage, lookup=connection_fields, kms=kms)


class EngineHook(BaseHook):
    """Builds the engine from config (``BACKUP_*``) and Airflow connections.

    :param config: backup settings; read from the environment when omitted
    :param pool_size: catalog connections kept open for reuse (0: one per transaction)
    """

    hook_name = "amprenta-backup engine"

    def __init__(self, config: BackupConfig | None = None, pool_size: int = 0) -> None:
        super().__init__()
        self.config = config or BackupConfig.from_env()
        self.pool_size = pool_size

    @cached_property
    def engine(self) -> BackupEngine:
        storage_hook = BackupStorageHook(self.config)
        catalog_hook = PostgresTargetHook(self.config.catalog_conn_id,
                                          setting="BACKUP_CATALOG_CONN_ID")
        copy = CopySettings.from_env()
        copy_hook = BackupStorageHook(self.config, copy.storage) if copy.storage else None
        return BackupEngine(self.config, storage=storage_hook.get_storage(),
                            catalog=Catalog(catalog_hook.get_conninfo(), self.pool_size),
                            resolve=resolve_connection,
                            s3_credentials=storage_hook.s3_credentials, copy=copy,
                            copy_storage=copy_hook.get_storage if copy_hook else None,
                            keys=encryption_keys(self.config))
