"""BackupStorageHook: the configured storage; S3 through an Airflow ``aws`` connection."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from amprenta_backup.core.settings import BackupConfig, StorageConfig
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.storage.factory import storage_from_config
from amprenta_backup.core.storage.s3 import client_config


class BackupStorageHook(BaseHook):
    """Builds the :class:`Storage` that ``BACKUP_STORAGE_TYPE`` names.

    For ``s3`` the client comes from the amazon provider's ``S3Hook``, so the connection's
    credentials, region and ``endpoint_url`` extra (any S3-compatible service) apply;
    ``BACKUP_S3_ENDPOINT_URL``, when set, takes precedence over the extra. The client gets
    connect/read timeouts and retries sized by ``BACKUP_S3_STALL_SECONDS`` on top of the
    connection's own ``config_kwargs``.

    :param config: backup settings; read from the environment when omitted
    :param storage: another storage than the primary (the second copy's ``BACKUP_COPY_*``)
    """

    hook_name = "Backup storage"

    def __init__(self, config: BackupConfig | None = None,
                 storage: StorageConfig | None = None) -> None:
        super().__init__()
        self.config = config or BackupConfig.from_env()
        self.storage = storage or self.config.storage

    def _s3_client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        storage = self.storage
        hook = S3Hook(aws_conn_id=storage.aws_conn_id, region_name=storage.s3_region)
        config = client_config(storage.s3_stall_seconds, base=hook.config,
                               endpoint_url=storage.s3_endpoint_url,
                               object_lock=storage.object_lock_mode is not None)
        if not storage.s3_endpoint_url:  # the connection's own endpoint_url extra, if any
            return hook.get_client_type(region_name=storage.s3_region, config=config)
        return hook.get_session(region_name=storage.s3_region).client(
            "s3", endpoint_url=storage.s3_endpoint_url, config=config)

    def s3_credentials(self) -> dict[str, str]:
        """The ``aws`` connection's credentials (and endpoint) as environment variables, for
        a process outside Airflow that reads the same bucket (``amprenta-wal fetch``)."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        storage = self.storage
        s3 = S3Hook(aws_conn_id=storage.aws_conn_id, region_name=storage.s3_region)
        credentials = s3.get_credentials()
        endpoint = s3.conn_config.get_service_endpoint_url("s3")
        values = {"AWS_ACCESS_KEY_ID": credentials.access_key,
                  "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
                  "AWS_SESSION_TOKEN": credentials.token, "BACKUP_S3_ENDPOINT_URL": endpoint}
        return {key: str(value) for key, value in values.items() if value}

    def get_storage(self) -> Storage:
        client = self._s3_client() if self.storage.storage_type == "s3" else None
        return storage_from_config(self.storage, s3_client=client)
