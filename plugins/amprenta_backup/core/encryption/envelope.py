"""The envelope of one encrypted object: which master key wrapped its data key, and how."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALGORITHM = "AES-256-GCM"
CHUNK_BYTES = 1024 * 1024
KEY_PROVIDER = "key"  # a master key from an Airflow connection (a keyring, by key id)
KMS_PROVIDER = "kms"  # AWS KMS GenerateDataKey / Decrypt
PROVIDERS = (KEY_PROVIDER, KMS_PROVIDER)
MIN_CHUNK, MAX_CHUNK = 1024, 64 * 1024 * 1024


@dataclass(frozen=True)
class Envelope:
    """How one object is encrypted; the object's header and its manifest both hold it.

    :param provider: ``key`` (a master key of the keyring) or ``kms``
    :param key_id: the master key's id (for ``kms`` the key's ARN)
    :param wrapped_key: the data key, encrypted by the master key (base64)
    :param chunk_bytes: plaintext bytes per sealed chunk
    :param algorithm: the chunk cipher
    """

    provider: str
    key_id: str
    wrapped_key: str
    chunk_bytes: int = CHUNK_BYTES
    algorithm: str = ALGORITHM

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "chunk_bytes": self.chunk_bytes,
                "key_id": self.key_id, "provider": self.provider,
                "wrapped_key": self.wrapped_key}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        """The envelope in ``data``; ValueError naming the field that is wrong."""
        if not isinstance(data, dict):
            raise ValueError("the encryption envelope is not an object")
        envelope = cls(provider=data["provider"], key_id=data["key_id"],
                       wrapped_key=data["wrapped_key"], chunk_bytes=data["chunk_bytes"],
                       algorithm=data["algorithm"])
        if envelope.algorithm != ALGORITHM:
            raise ValueError(f"algorithm {envelope.algorithm!r} is not {ALGORITHM}")
        if envelope.provider not in PROVIDERS:
            raise ValueError(f"key provider {envelope.provider!r} is not one of "
                             f"{', '.join(PROVIDERS)}")
        if not isinstance(envelope.chunk_bytes, int) or isinstance(envelope.chunk_bytes, bool) \
                or not MIN_CHUNK <= envelope.chunk_bytes <= MAX_CHUNK:
            raise ValueError(f"chunk_bytes {envelope.chunk_bytes!r} is not {MIN_CHUNK}-"
                             f"{MAX_CHUNK}")
        for name in ("key_id", "wrapped_key"):
            value = getattr(envelope, name)
            if not isinstance(value, str) or not value or len(value) > 4096:
                raise ValueError(f"{name} is not a non-empty string")
        return envelope
