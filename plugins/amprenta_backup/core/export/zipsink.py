"""A ZIP written straight into a storage upload: no temp copy of the whole archive.

``zipfile`` writes to an unseekable stream with data descriptors after each member; the
sink counts and hashes the bytes as they go to the storage's :class:`ObjectWriter`.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable
from typing import Any

from amprenta_backup.core.export.manifest import Member
from amprenta_backup.core.storage.base import ObjectWriter

CHUNK = 1 << 20


class _Sink(io.RawIOBase):
    """Write-only, unseekable: what ``zipfile`` needs to stream."""

    def __init__(self, writer: ObjectWriter) -> None:
        super().__init__()
        self.writer = writer
        self.position = 0
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.writer.write(data)
        self.digest.update(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position


class ZipStream:
    """Members written one after another into ``writer``; :meth:`close` ends the archive.

    :param level: deflate level 1-9, or 0 to store members uncompressed
    """

    def __init__(self, writer: ObjectWriter, level: int = 1) -> None:
        self._sink = _Sink(writer)
        method = zipfile.ZIP_DEFLATED if level else zipfile.ZIP_STORED
        self._zip = zipfile.ZipFile(self._sink, "w", compression=method,
                                    compresslevel=level or None, allowZip64=True)

    def add(self, path: str, chunks: Iterable[bytes | memoryview]) -> Member:
        """Write one member from ``chunks``; returns its sha256 and size (uncompressed)."""
        digest, size = hashlib.sha256(), 0
        buffer = bytearray()
        with self._zip.open(path, "w", force_zip64=True) as member:
            for chunk in chunks:
                buffer += chunk
                if len(buffer) >= CHUNK:
                    digest.update(buffer)
                    member.write(buffer)
                    size += len(buffer)
                    buffer.clear()
            digest.update(buffer)
            member.write(buffer)
            size += len(buffer)
        return Member.model_construct(path=path, sha256=digest.hexdigest(), bytes=size)

    def close(self) -> tuple[str, int]:
        """Write the central directory; returns the archive's sha256 and size."""
        self._zip.close()
        return self._sink.digest.hexdigest(), self._sink.position
