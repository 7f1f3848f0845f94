"""The :class:`KeyService` of the ``BACKUP_ENCRYPTION*`` settings, outside Airflow.

Connections resolve from ``AIRFLOW_CONN_<ID>`` (:mod:`amprenta_backup.core.connections`), KMS
through boto3 with the ``BACKUP_AWS_CONN_ID`` connection's credentials if that variable is set
(otherwise AWS's credential chain). The Airflow adapters pass their own lookup and client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from amprenta_backup.core.connections import connection_fields, s3_client_kwargs
from amprenta_backup.core.encryption.keys import FieldsLookup, KeyConfig, KeyService, KmsFactory
from amprenta_backup.core.settings import EncryptionSettings, StorageConfig


def key_config(settings: EncryptionSettings) -> KeyConfig:
    return KeyConfig(mode=settings.mode, key_conn=settings.key_conn, key_id=settings.key_id,
                     kms_key_id=settings.kms_key_id, plaintext_wal=settings.plaintext_wal)


def kms_kwargs(settings: EncryptionSettings, storage: StorageConfig,
               environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """boto3 ``kms`` client arguments: region, endpoint, the aws connection's credentials."""
    kwargs: dict[str, Any] = {"region_name": storage.s3_region}
    kwargs.update(s3_client_kwargs(storage.aws_conn_id, environ))
    if settings.kms_endpoint_url:
        kwargs["endpoint_url"] = settings.kms_endpoint_url
    return kwargs


def key_service(settings: EncryptionSettings, storage: StorageConfig,
                environ: Mapping[str, str] | None = None, lookup: FieldsLookup | None = None,
                kms: KmsFactory | None = None) -> KeyService:
    """The key service of these settings; ``lookup``/``kms`` override how keys are reached."""

    def env_lookup(conn_id: str) -> Mapping[str, Any]:
        return connection_fields(conn_id, environ)

    def env_kms() -> Any:
        import boto3

        return boto3.client("kms", **kms_kwargs(settings, storage, environ))

    return KeyService(key_config(settings), lookup or env_lookup, kms or env_kms)
