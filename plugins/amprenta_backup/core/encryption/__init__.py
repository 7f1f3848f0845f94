"""Client-side encryption of stored objects (dumps, globals, base backups, WAL segments).

Writers ask :func:`seal_for` for an :class:`ObjectSeal` (``None`` when encryption is off) and
put its :meth:`ObjectSeal.writer` between compression and the hashing storage writer, so the
sha256 in the manifest stays that of the stored (encrypted) bytes. Readers open the data key
first (:func:`open_key`: a missing or wrong key fails before anything is created), then read
through :func:`decrypting`, which checks every chunk's tag. The format is in
:mod:`.stream`, the keys in :mod:`.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amprenta_backup.core.encryption.envelope import ALGORITHM, Envelope
from amprenta_backup.core.encryption.keys import KeyConfig, KeyService, KeyUnavailable
from amprenta_backup.core.encryption.stream import (
    MAGIC,
    DecryptingReader,
    EncryptingWriter,
    Sink,
    Source,
    TamperedObject,
    read_header,
    seal_bytes,
)

__all__ = ["ALGORITHM", "DecryptingReader", "Envelope", "KeyConfig", "KeyService",
           "KeyUnavailable", "ObjectSeal", "TamperedObject", "backup_identity", "decrypting",
           "envelope_of", "globals_identity",
           "open_if_sealed", "open_key", "open_object", "seal_for", "wal_identity"]


def backup_identity(backup_id: str, key: str) -> str:
    """What an object of a backup is: its backup id and its file name."""
    return f"backup:{backup_id}:{key.rsplit('/', 1)[-1]}"


def globals_identity(globals_id: str, key: str) -> str:
    return f"globals:{globals_id}:{key.rsplit('/', 1)[-1]}"


def wal_identity(target: str, name: str) -> str:
    return f"wal:{target}:{name}"


@dataclass(frozen=True)
class ObjectSeal:
    """The data key and envelope of one object being written.

    :param data_key: the object's fresh data key
    :param envelope: its wrapped form; goes into the header and the manifest
    :param identity: what the object is
    """

    data_key: bytes
    envelope: Envelope
    identity: str

    def writer(self, target: Sink) -> EncryptingWriter:
        """A writer sealing into ``target``; ``close()`` it after the last byte."""
        return EncryptingWriter(target, self.data_key, self.envelope, self.identity)

    def seal(self, data: bytes) -> bytes:
        """``data`` as a whole encrypted object."""
        return seal_bytes(data, self.data_key, self.envelope, self.identity)

    def record(self) -> dict[str, Any]:
        """The envelope as the manifest records it."""
        return self.envelope.to_dict()


def seal_for(keys: KeyService | None, identity: str) -> ObjectSeal | None:
    """A seal for a new object, or None when encryption is off."""
    if keys is None or not keys.enabled:
        return None
    data_key, envelope = keys.new_data_key(identity)
    return ObjectSeal(data_key, envelope, identity)


def envelope_of(recorded: dict[str, Any] | None) -> Envelope | None:
    """The envelope a manifest records (None: the object is not encrypted)."""
    if not recorded:
        return None
    try:
        return Envelope.from_dict(recorded)
    except (ValueError, TypeError, KeyError) as exc:
        raise TamperedObject(f"the manifest's encryption envelope is unreadable ({exc})") \
            from None


def open_key(keys: KeyService | None, envelope: Envelope, identity: str, what: str) -> bytes:
    """The data key of an object; KeyUnavailable (naming the key id and the fix) otherwise."""
    if keys is None:
        raise KeyUnavailable(
            f"{what} is encrypted with master key id {envelope.key_id!r} "
            f"({envelope.provider}), and no keys are configured for this process; set "
            "BACKUP_ENCRYPTION_KEY_CONN (or the aws connection for kms) where it runs")
    return keys.data_key(envelope, identity, what)


def decrypting(raw: Source, data_key: bytes, expected: Envelope, identity: str,
               where: str) -> DecryptingReader:
    """The plaintext of ``raw``, whose header must carry the ``expected`` envelope."""
    found, digest = read_header(raw, where)
    if found != expected:
        raise TamperedObject(f"{where} is encrypted under another envelope (another wrapped "
                             "data key) than its manifest records: it belongs to another "
                             "backup")
    return DecryptingReader(raw, data_key, found, digest, identity, where)


def open_if_sealed(raw: Source, keys: KeyService | None, identity: str, where: str
                   ) -> Source:
    """The plaintext of ``raw`` if it is an encrypted object, else ``raw``'s bytes as they are
    (segments archived before encryption was turned on): refused as :class:`TamperedObject`
    while encryption is on, unless ``plaintext_wal`` allows them (anyone who can write the
    bucket could otherwise swap in a segment of their own, with a matching sidecar)."""
    head = raw.read(len(MAGIC))
    if head == MAGIC:
        return open_object(_Chained(head, raw), keys, identity, where)
    if keys is not None and keys.enabled and not keys.config.plaintext_wal:
        raise TamperedObject(
            f"{where} is not encrypted, and with BACKUP_ENCRYPTION={keys.config.mode} every WAL "
            "segment must be: it was replaced, or archived before encryption was turned on "
            "(then set BACKUP_ENCRYPTION_PLAINTEXT_WAL=true where the restore runs)")
    return _Chained(head, raw)


class _Chained:
    """Bytes already read, then the rest of a stream."""

    def __init__(self, head: bytes, rest: Source) -> None:
        self._head, self._rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(size)
        size = len(self._head) if size is None or size < 0 else size
        data, self._head = self._head[:size], self._head[size:]
        return data


def open_object(raw: Source, keys: KeyService | None, identity: str, where: str
                ) -> DecryptingReader:
    """The plaintext of a self-describing object (a WAL segment): header, key, chunks."""
    envelope, digest = read_header(raw, where)
    data_key = open_key(keys, envelope, identity, where)
    return DecryptingReader(raw, data_key, envelope, digest, identity, where)
