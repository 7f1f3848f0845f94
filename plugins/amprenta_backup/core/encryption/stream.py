"""The stored format of an encrypted object: a header, then AES-256-GCM chunks.

``MAGIC``, a 4-byte big-endian length and the envelope as JSON (algorithm, chunk size, key id,
wrapped data key), then the plaintext (the compressed bytes) in chunks of ``chunk_bytes``,
each sealed with the object's own data key. A chunk's 12-byte nonce is its index (8 bytes)
and a final-chunk flag; its associated data is the sha256 of the header, the index, the flag
and the object's identity (``backup:<id>:<name>``, ``wal:<target>:<segment>``). So a chunk
that is changed, dropped, moved, appended after the last one, cut off, or taken from another
object fails its tag, and an object without its final chunk is refused as truncated. Every
object gets a fresh random data key, so the counter nonces never repeat under one key.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from amprenta_backup.core.encryption.envelope import Envelope
from amprenta_backup.core.errors import ChecksumMismatch

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"AMPRENC1"
TAG_BYTES = 16
MAX_HEADER = 64 * 1024
_LENGTH = struct.Struct(">I")
_POSITION = struct.Struct(">QI")  # chunk index, final flag: the nonce and part of the AD


def aead(key: bytes) -> AESGCM:
    """AES-GCM with ``key``; cryptography is imported here, when first needed (about 0.1 s:
    ``amprenta-wal push`` without encryption never pays it)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def invalid_tag() -> type[Exception]:
    """cryptography's InvalidTag, imported when first needed."""
    from cryptography.exceptions import InvalidTag

    return InvalidTag


class TamperedObject(ChecksumMismatch):
    """An encrypted object whose bytes fail authentication: changed, cut or swapped."""


class Sink(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _associated(header_digest: bytes, index: int, final: bool, identity: str) -> bytes:
    return header_digest + _POSITION.pack(index, int(final)) + identity.encode()


def header_bytes(envelope: Envelope) -> bytes:
    body = json.dumps(envelope.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + _LENGTH.pack(len(body)) + body


class EncryptingWriter:
    """Seals what is written to it chunk by chunk and writes header and chunks to ``target``.

    :param target: where the stored bytes go (a hashing writer in front of storage)
    :param data_key: this object's 32-byte data key
    :param envelope: how that key is wrapped; written as the header
    :param identity: what the object is, bound into every chunk
    """

    def __init__(self, target: Sink, data_key: bytes, envelope: Envelope,
                 identity: str) -> None:
        self._target = target
        self._aead = aead(data_key)
        self._chunk = envelope.chunk_bytes
        self._identity = identity
        header = header_bytes(envelope)
        self._digest = hashlib.sha256(header).digest()
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        target.write(header)

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) > self._chunk:  # keep at least one byte: the last chunk
            self._seal(bytes(self._buffer[:self._chunk]), final=False)
            del self._buffer[:self._chunk]
        return len(data)

    def flush(self) -> None:
        """Nothing to flush before :meth:`close`: a partial chunk waits for more bytes."""

    def close(self) -> None:
        """Seal the last chunk (possibly empty) with the final flag; call once, at the end."""
        if not self._closed:
            self._closed = True
            self._seal(bytes(self._buffer), final=True)
            self._buffer.clear()

    def _seal(self, plain: bytes, final: bool) -> None:
        nonce = _POSITION.pack(self._index, int(final))
        aad = _associated(self._digest, self._index, final, self._identity)
        self._target.write(self._aead.encrypt(nonce, plain, aad))
        self._index += 1


def read_header(source: Source, where: str) -> tuple[Envelope, bytes]:
    """The envelope at the start of ``source`` and the header's sha256."""
    start = _read_exactly(source, len(MAGIC) + _LENGTH.size)
    if len(start) < len(MAGIC) + _LENGTH.size or not start.startswith(MAGIC):
        raise TamperedObject(f"{where} is not an encrypted object (no {MAGIC.decode()} header)"
                             "; it was replaced or damaged")
    (length,) = _LENGTH.unpack(start[len(MAGIC):])
    if length > MAX_HEADER:
        raise TamperedObject(f"{where} has a {length}-byte header; it is damaged")
    body = _read_exactly(source, length)
    try:
        envelope = Envelope.from_dict(json.loads(body))
    except (ValueError, TypeError, KeyError) as exc:
        raise TamperedObject(f"{where} has an unreadable encryption header ({exc})") from None
    return envelope, hashlib.sha256(start + body).digest()


class DecryptingReader:
    """The plaintext of an encrypted object, read through ``read(size)``; every chunk's tag is
    checked before its bytes are handed out.

    :param source: the stored bytes, positioned after the header
    :param data_key: the unwrapped data key
    :param envelope: the header's envelope
    :param header_digest: the header's sha256 (from :func:`read_header`)
    :param identity: what the object must be
    :param where: the object's URI, for messages
    """

    def __init__(self, source: Source, data_key: bytes, envelope: Envelope,
                 header_digest: bytes, identity: str, where: str) -> None:
        self._source = source
        self._aead = aead(data_key)
        self._sealed = envelope.chunk_bytes + TAG_BYTES
        self._digest = header_digest
        self._identity = identity
        self._where = where
        self._ahead = _read_exactly(source, self._sealed)
        self._plain = b""
        self._index = 0
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while not self._plain and not self._ended:
            self._next_chunk()
        size = len(self._plain) if size is None or size < 0 else size
        data, self._plain = self._plain[:size], self._plain[size:]
        return data

    def read_all(self) -> bytes:
        """Everything left (for small objects)."""
        parts = []
        while data := self.read():
            parts.append(data)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _next_chunk(self) -> None:
        sealed = self._ahead
        self._ahead = _read_exactly(self._source, self._sealed) if sealed else b""
        final = not self._ahead
        if len(sealed) < TAG_BYTES:
            raise TamperedObject(f"{self._where} ends inside chunk {self._index}: it was "
                                 "truncated")
        nonce = _POSITION.pack(self._index, int(final))
        try:
            self._plain = self._aead.decrypt(
                nonce, sealed, _associated(self._digest, self._index, final, self._identity))
        except invalid_tag():
            raise TamperedObject(
                f"chunk {self._index} of {self._where} fails its authentication tag: the stored "
                "bytes were changed, truncated, reordered or belong to another object; this "
                "copy cannot be used") from None
        self._index += 1
        self._ended = final


def _read_exactly(source: Source, size: int) -> bytes:
    parts, missing = [], size
    while missing:
        data = source.read(missing)
        if not data:
            break
        parts.append(data)
        missing -= len(data)
    return b"".join(parts)


def seal_bytes(data: bytes, data_key: bytes, envelope: Envelope, identity: str) -> bytes:
    """A whole small object (a WAL segment), encrypted in the same format."""
    out: list[bytes] = []
    writer = EncryptingWriter(_ListSink(out.append), data_key, envelope, identity)
    writer.write(data)
    writer.close()
    return b"".join(out)


class _ListSink:
    def __init__(self, append: Callable[[bytes], None]) -> None:
        self._append = append

    def write(self, data: bytes) -> int:
        self._append(data)
        return len(data)
