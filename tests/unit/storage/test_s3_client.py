"""The production S3 client: timeouts and retries sized from BACKUP_S3_STALL_SECONDS."""

from __future__ import annotations

from amprenta_backup.core.settings import StorageConfig
from amprenta_backup.core.storage.factory import s3_client_from_config, storage_from_config
from amprenta_backup.core.storage.s3 import MAX_ATTEMPTS


def test_the_client_has_timeouts_and_retries_within_the_stall_bound() -> None:
    config = StorageConfig.from_env({
        "BACKUP_STORAGE_TYPE": "s3", "BACKUP_S3_STALL_SECONDS": "120",
        "BACKUP_S3_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y"})
    client = s3_client_from_config(config)
    settings = client.meta.config
    assert settings.connect_timeout == 10 and settings.read_timeout == 30
    assert settings.retries == {"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"}
    assert MAX_ATTEMPTS * settings.read_timeout <= 120  # one frozen call gives up in time
    storage = storage_from_config(config, s3_client=client)
    assert storage.stall_seconds == 120  # type: ignore[attr-defined]
