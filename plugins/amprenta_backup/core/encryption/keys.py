"""Master keys: a keyring from a connection, or AWS KMS; they wrap and unwrap data keys.

Every object gets a fresh 32-byte data key. With ``BACKUP_ENCRYPTION=key`` it is wrapped with
AES-256-GCM by the master key ``BACKUP_ENCRYPTION_KEY_ID`` of the connection
``BACKUP_ENCRYPTION_KEY_CONN`` (the password holds that key; ``extra.keys`` maps further ids to
keys: the older ones after a rotation). With ``kms`` it comes from KMS ``GenerateDataKey``.
The object's identity is bound into the wrap (associated data, or the KMS encryption
context), so a wrapped key only opens the object it was made for. Reading needs only the key
id the envelope names, whatever the current mode: old ids stay usable after a rotation.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from amprenta_backup.core.encryption.envelope import (
    CHUNK_BYTES,
    KEY_PROVIDER,
    KMS_PROVIDER,
    Envelope,
)
from amprenta_backup.core.encryption.stream import aead, invalid_tag
from amprenta_backup.core.errors import BackupError

KEY_BYTES = 32
NONCE_BYTES = 12
CONTEXT_KEY = "amprenta-object"

FieldsLookup = Callable[[str], Mapping[str, Any]]
"""``conn_id -> {"password": ..., "extra": {...}}``: a connection's fields (Airflow's
connections and secrets backends under Airflow, ``AIRFLOW_CONN_<ID>`` elsewhere)."""

KmsFactory = Callable[[], Any]
"""``() -> boto3 KMS client``."""


class KeyUnavailable(BackupError):
    """The master key an object needs is missing, wrong or refused; the message names its id
    and the fix. Not damage: a verify that meets it records nothing."""


@dataclass(frozen=True)
class KeyConfig:
    """Which master key new objects use, and where keys come from.

    :param mode: ``off``, ``key`` or ``kms``
    :param key_conn: connection holding the keyring
    :param key_id: id of the keyring's current key (``key`` mode)
    :param kms_key_id: KMS key id, ARN or alias (``kms`` mode)
    :param chunk_bytes: plaintext per sealed chunk of new objects (fixed; tests make it small)
    :param plaintext_wal: with a mode on, still accept WAL segments stored unencrypted
    """

    mode: str = "off"
    key_conn: str = "backup_encryption"
    key_id: str | None = None
    kms_key_id: str | None = None
    chunk_bytes: int = CHUNK_BYTES
    plaintext_wal: bool = False


class KeyService:
    """Makes data keys for new objects and opens those of stored ones.

    :param config: mode and key ids
    :param lookup: how the keyring connection is read
    :param kms: how a KMS client is made (only when an object needs it)
    """

    def __init__(self, config: KeyConfig, lookup: FieldsLookup | None = None,
                 kms: KmsFactory | None = None) -> None:
        self.config = config
        self._lookup = lookup
        self._kms_factory = kms
        self._kms: Any = None
        self._ring: dict[str, bytes] | None = None
        self._opened: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether new objects are encrypted."""
        return self.config.mode != "off"

    def check_ready(self, what: str) -> None:
        """Raise :class:`KeyUnavailable` (naming the key id and the fix) unless new objects can
        be sealed: the current master key is in its connection and well formed, or KMS gives
        a data key (one ``GenerateDataKey``, discarded). Run before any work starts."""
        if self.config.mode == KMS_PROVIDER:
            self._kms_data_key(f"preflight:{what}")
        elif self.enabled:
            key_id = self.config.key_id or ""
            self._master(key_id, f"{what} (BACKUP_ENCRYPTION_KEY_ID={key_id})")

    def new_data_key(self, identity: str) -> tuple[bytes, Envelope]:
        """A fresh data key for the object ``identity`` and its envelope."""
        if self.config.mode == KMS_PROVIDER:
            return self._kms_data_key(identity)
        key_id = self.config.key_id or ""
        master = self._master(key_id, f"new backups (BACKUP_ENCRYPTION_KEY_ID={key_id})")
        data_key = os.urandom(KEY_BYTES)
        nonce = os.urandom(NONCE_BYTES)
        wrapped = nonce + aead(master).encrypt(nonce, data_key, _wrap_ad(key_id, identity))
        return data_key, Envelope(KEY_PROVIDER, key_id, base64.b64encode(wrapped).decode(),
                                  self.config.chunk_bytes)

    def data_key(self, envelope: Envelope, identity: str, what: str) -> bytes:
        """The data key of the object ``identity`` (``what`` names it in messages); opened
        once per process (a restore checks it up front, then reads with it)."""
        cached = self._opened.get((envelope.wrapped_key, identity))
        if cached is None:
            cached = self._open(envelope, identity, what)
            self._opened[(envelope.wrapped_key, identity)] = cached
        return cached

    def _open(self, envelope: Envelope, identity: str, what: str) -> bytes:
        try:
            wrapped = base64.b64decode(envelope.wrapped_key, validate=True)
        except binascii.Error:
            raise KeyUnavailable(f"{what}: its wrapped data key is not base64; the manifest or "
                                 "header was changed") from None
        if envelope.provider == KMS_PROVIDER:
            return self._kms_decrypt(envelope, wrapped, identity, what)
        master = self._master(envelope.key_id, what)
        try:
            return aead(master).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                        _wrap_ad(envelope.key_id, identity))
        except (invalid_tag(), ValueError):
            raise KeyUnavailable(
                f"{what} is encrypted with master key id {envelope.key_id!r}, and the key under "
                f"that id in connection {self.config.key_conn!r} does not open it: either that is "
                "not the key it was made with (put the original key back under id "
                f"{envelope.key_id!r}: password for the current id, extra 'keys' for older "
                "ones), or the object was moved here from another backup or segment, or its "
                "wrapped key was changed") from None

    def connection_env(self) -> dict[str, str]:
        """The keyring connection as ``AIRFLOW_CONN_<ID>`` (JSON) for ``amprenta-wal fetch`` in
        ``restore_command`` (a private settings file); empty when it is not defined."""
        if self._lookup is None:
            return {}
        try:
            fields = self._lookup(self.config.key_conn)
        except BackupError:
            return {}
        value = {"conn_type": "generic", "password": str(fields.get("password") or ""),
                 "extra": dict(fields.get("extra") or {})}
        return {f"AIRFLOW_CONN_{self.config.key_conn.upper()}": json.dumps(value)}

    def _master(self, key_id: str, what: str) -> bytes:
        ring = self._keyring(what, key_id)
        if key_id not in ring:
            known = ", ".join(sorted(ring)) or "none"
            raise KeyUnavailable(
                f"{what} needs master key id {key_id!r}, which connection "
                f"{self.config.key_conn!r} does not hold (it has: {known}); add it to the "
                f"connection's extra as {{\"keys\": {{\"{key_id}\": \"<base64 key>\"}}}} (keys "
                "of rotated-out ids must stay there for as long as their backups are kept)")
        return ring[key_id]

    def _keyring(self, what: str, key_id: str) -> dict[str, bytes]:
        with self._lock:
            if self._ring is None:
                self._ring = self._load_ring(what, key_id)
            return self._ring

    def _load_ring(self, what: str, key_id: str) -> dict[str, bytes]:
        conn = self.config.key_conn
        if self._lookup is None:
            raise KeyUnavailable(f"{what} needs master key id {key_id!r}, and no key "
                                 "connection can be read here; set BACKUP_ENCRYPTION_KEY_CONN")
        try:
            fields = self._lookup(conn)
        except BackupError as exc:
            raise KeyUnavailable(
                f"{what} needs master key id {key_id!r} from connection {conn!r} "
                f"(BACKUP_ENCRYPTION_KEY_CONN), which cannot be read: {exc}") from None
        return parse_keyring(conn, fields, self.config.key_id)

    def _client(self) -> Any:
        with self._lock:
            if self._kms is None:
                if self._kms_factory is None:
                    raise KeyUnavailable("no KMS client can be made here")
                self._kms = self._kms_factory()
            return self._kms

    def _kms_data_key(self, identity: str) -> tuple[bytes, Envelope]:
        key_id = self.config.kms_key_id or ""
        try:
            answer = self._client().generate_data_key(
                KeyId=key_id, KeySpec="AES_256", EncryptionContext={CONTEXT_KEY: identity})
        except Exception as exc:  # botocore's ClientError and connection errors
            raise KeyUnavailable(
                f"KMS GenerateDataKey with key {key_id!r} (BACKUP_ENCRYPTION_KMS_KEY_ID) failed: "
                f"{_aws_error(exc)}; check the key id, that it is enabled, and that the aws "
                "connection may use kms:GenerateDataKey on it") from None
        wrapped = base64.b64encode(answer["CiphertextBlob"]).decode()
        return bytes(answer["Plaintext"]), Envelope(KMS_PROVIDER, str(answer["KeyId"]), wrapped,
                                                    self.config.chunk_bytes)

    def _kms_decrypt(self, envelope: Envelope, wrapped: bytes, identity: str,
                     what: str) -> bytes:
        try:
            answer = self._client().decrypt(CiphertextBlob=wrapped, KeyId=envelope.key_id,
                                            EncryptionContext={CONTEXT_KEY: identity})
        except KeyUnavailable:
            raise
        except Exception as exc:
            raise KeyUnavailable(
                f"{what} is encrypted with KMS key {envelope.key_id!r}, and KMS Decrypt "
                f"failed: {_aws_error(exc)}; the key must stay enabled (not scheduled for "
                "deletion) and the aws connection needs kms:Decrypt on it") from None
        return bytes(answer["Plaintext"])


def _wrap_ad(key_id: str, identity: str) -> bytes:
    return b"amprenta-data-key\0" + key_id.encode() + b"\0" + identity.encode()


def _aws_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def parse_keyring(conn_id: str, fields: Mapping[str, Any], current: str | None
                  ) -> dict[str, bytes]:
    """Key id -> 32-byte key from a connection: ``extra.keys`` and, under the ``current`` id,
    the password. A key that is not 32 bytes of base64 (or 64 hex digits) is refused, naming
    its id and never its value."""
    extra = fields.get("extra") or {}
    listed = extra.get("keys") if isinstance(extra, Mapping) else None
    if listed is not None and not isinstance(listed, Mapping):
        raise KeyUnavailable(f"connection {conn_id!r}: extra 'keys' must be an object of key id "
                             "-> base64 key")
    encoded: dict[str, str] = {str(k): str(v) for k, v in (listed or {}).items()}
    password = str(fields.get("password") or "")
    if password and current:
        encoded[current] = password
    return {key_id: decode_key(conn_id, key_id, value) for key_id, value in encoded.items()}


def decode_key(conn_id: str, key_id: str, value: str) -> bytes:
    """A 32-byte key from base64 or hex; KeyUnavailable naming the id, never the value."""
    text = value.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 2 * KEY_BYTES else base64.b64decode(
            text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise KeyUnavailable(
            f"connection {conn_id!r}: the key of id {key_id!r} is not 32 bytes in base64 or "
            "hex; make one with: python -c \"import os,base64; "
            "print(base64.b64encode(os.urandom(32)).decode())\"")
    return raw
