"""Build the configured :class:`Storage` from a :class:`StorageConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from amprenta_backup.core.connections import s3_client_kwargs
from amprenta_backup.core.settings import StorageConfig
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.storage.local import LocalStorage
from amprenta_backup.core.storage.objectlock import ObjectLock
from amprenta_backup.core.storage.s3 import LazyClient, S3Storage, client_config, new_client


def s3_client_from_config(config: StorageConfig) -> Any:
    """An S3 client from ``BACKUP_S3_*``, the ``AIRFLOW_CONN_<BACKUP_AWS_CONN_ID>``
    variable if set, and otherwise the standard AWS credential chain."""
    return lazy_client_from_config(config).get()


def lazy_client_from_config(config: StorageConfig) -> LazyClient:
    """:func:`s3_client_from_config`, made on first use; the connection is read (and a bad
    one refused) now."""
    kwargs: dict[str, Any] = {"region_name": config.s3_region}
    if config.s3_endpoint_url:
        kwargs["endpoint_url"] = config.s3_endpoint_url
    kwargs.update(s3_client_kwargs(config.aws_conn_id))

    def make() -> Any:
        options = client_config(config.s3_stall_seconds, endpoint_url=config.s3_endpoint_url,
                                object_lock=config.object_lock_mode is not None)
        return new_client(options, **kwargs)

    return LazyClient(make)


def storage_from_config(config: StorageConfig, s3_client: Any | None = None) -> Storage:
    """The storage ``config`` names; ``s3_client`` overrides how S3 is reached."""
    if config.storage_type == "local":
        return LocalStorage(config.local_path)
    client = s3_client if s3_client is not None else lazy_client_from_config(config)
    lock = (ObjectLock(config.object_lock_mode, timedelta(days=config.object_lock_days),
                       setting=config.names()["object_lock_mode"])
            if config.object_lock_mode else None)
    return S3Storage(client, config.s3_bucket, sse=config.s3_sse,
                     kms_key_id=config.s3_kms_key_id, stall_seconds=config.s3_stall_seconds,
                     object_lock=lock)


def connection_credentials(config: StorageConfig) -> dict[str, str]:
    """``AWS_*`` variables (and the endpoint) of ``AIRFLOW_CONN_<BACKUP_AWS_CONN_ID>``."""
    given = s3_client_kwargs(config.aws_conn_id)
    return {"AWS_ACCESS_KEY_ID": given.get("aws_access_key_id", ""),
            "AWS_SECRET_ACCESS_KEY": given.get("aws_secret_access_key", ""),
            "BACKUP_S3_ENDPOINT_URL": given.get("endpoint_url", "")}


def storage_environment(config: StorageConfig,
                        credentials: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The ``BACKUP_*`` storage settings (and S3 ``credentials``) as environment variables, for
    a process that reaches the same storage (``amprenta-wal fetch`` in ``restore_command``).

    :param credentials: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optionally
        ``AWS_SESSION_TOKEN`` and ``BACKUP_S3_ENDPOINT_URL``; empty ones are left out; by
        default those of :func:`connection_credentials`
    """
    env = config.to_env()
    if config.storage_type != "s3":
        return env
    credentials = connection_credentials(config) if credentials is None else credentials
    env.update({"AWS_ACCESS_KEY_ID": credentials.get("AWS_ACCESS_KEY_ID") or "",
                "AWS_SECRET_ACCESS_KEY": credentials.get("AWS_SECRET_ACCESS_KEY") or ""})
    optional = {"AWS_SESSION_TOKEN": credentials.get("AWS_SESSION_TOKEN"),
                "BACKUP_S3_ENDPOINT_URL": config.s3_endpoint_url
                or credentials.get("BACKUP_S3_ENDPOINT_URL")}
    env.update({key: value for key, value in optional.items() if value})
    return env
