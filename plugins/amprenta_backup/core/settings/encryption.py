"""Settings of client-side encryption (declared once)."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, model_validator

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.identifiers import check_conn_id
from amprenta_backup.core.settings.base import Settings, lower, var

KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class EncryptionSettings(Settings):
    """Client-side encryption of dumps, globals, base backups and WAL before they are stored."""

    group: ClassVar[str] = "Encryption"

    mode: Annotated[Literal["off", "key", "kms"], BeforeValidator(lower)] = var(
        "BACKUP_ENCRYPTION", "off", "encrypt what is stored (AES-256-GCM in 1 MiB chunks, a "
        "data key per object): `key` wraps data keys with a master key from "
        "`BACKUP_ENCRYPTION_KEY_CONN`, `kms` gets them from AWS KMS; `off` stores compressed "
        "bytes only (encrypted backups still restore)")
    key_conn: Annotated[str, BeforeValidator(lambda v: check_conn_id(v, ""))] = var(
        "BACKUP_ENCRYPTION_KEY_CONN", "backup_encryption", "Airflow connection (or secrets "
        "backend entry) of the master keys: its password is the key of "
        "`BACKUP_ENCRYPTION_KEY_ID`, its extra `{\"keys\": {\"<id>\": \"<base64>\"}}` holds "
        "older ones (32 bytes, base64 or hex)")
    key_id: str | None = var(
        "BACKUP_ENCRYPTION_KEY_ID", None, "id of the master key new backups use (recorded in "
        "each manifest; rotate by adding a key under a new id and pointing this at it)",
        shown="(required with `key`)")
    kms_key_id: str | None = var(
        "BACKUP_ENCRYPTION_KMS_KEY_ID", None, "KMS key id, ARN or alias for `kms` (through "
        "the `BACKUP_AWS_CONN_ID` connection)", shown="(required with `kms`)")
    plaintext_wal: bool = var(
        "BACKUP_ENCRYPTION_PLAINTEXT_WAL", False, "with `BACKUP_ENCRYPTION` on, let WAL fetch "
        "(`restore_command`) replay segments stored without client-side encryption (archived "
        "before it was turned on); `false` refuses them, as a replaced segment would be")
    kms_endpoint_url: str | None = var(
        "BACKUP_ENCRYPTION_KMS_ENDPOINT_URL", None, "KMS endpoint, when not AWS's own "
        "(otherwise the aws connection's `endpoint_url`)")

    @model_validator(mode="after")
    def _check(self) -> EncryptionSettings:
        if self.key_id is not None and not KEY_ID.match(self.key_id):
            raise ConfigError(f"BACKUP_ENCRYPTION_KEY_ID={self.key_id!r} is not a key id; use "
                              "1-64 letters, digits, '.', '_', ':' or '-', e.g. 2026-12")
        if self.mode == "key" and not self.key_id:
            raise ConfigError("BACKUP_ENCRYPTION=key needs BACKUP_ENCRYPTION_KEY_ID, the id of "
                              "the master key in BACKUP_ENCRYPTION_KEY_CONN that new backups "
                              "use, e.g. BACKUP_ENCRYPTION_KEY_ID=2026-12")
        if self.mode == "kms" and not self.kms_key_id:
            raise ConfigError("BACKUP_ENCRYPTION=kms needs BACKUP_ENCRYPTION_KMS_KEY_ID (a KMS "
                              "key id, ARN or alias/...)")
        return self
