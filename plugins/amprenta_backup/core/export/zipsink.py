"""A ZIP written straight into a storage upload: no temp copy of the whole archive.

``zipfile`` writes to an unseekable stream with data descriptors after each member; the
sink counts and hashes the bytes as they go to the storage's :class:`ObjectWriter`.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import queue
import threading
import zipfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from amprenta_backup.core.export.manifest import Member
from amprenta_backup.core.storage.base import ObjectWriter

CHUNK = 1 << 20
_BLOCKS = 4  # blocks in flight between the reading and the compressing thread


class _Sink(io.RawIOBase):
    """Write-only, unseekable: what ``zipfile`` needs to stream."""

    def __init__(self, writer: ObjectWriter) -> None:
        super().__init__()
        self.writer = writer
        self.position = 0
        self.digest = hashlib.sha256()
        self.broken = False  # a member failed: the archive is discarded, nothing more written

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.broken:
            return len(data)
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
        """Write one member from ``chunks``; returns its sha256 and size (uncompressed).

        The chunks are joined into blocks of about 1 MiB in this thread and hashed,
        deflated and written in another (zlib and hashlib let go of the GIL), so the
        reading of the next rows overlaps the compression of the last."""
        try:
            return self._add(path, chunks)
        except BaseException:
            self._sink.broken = True
            raise

    def _add(self, path: str, chunks: Iterable[bytes | memoryview]) -> Member:
        digest, size = hashlib.sha256(), 0
        blocks = _blocks(chunks)
        first = next(blocks)
        with self._zip.open(path, "w", force_zip64=True) as member:
            second = next(blocks, None)
            if second is None:  # one block: no thread
                digest.update(first)
                member.write(first)
                return Member.model_construct(path=path, sha256=digest.hexdigest(),
                                              bytes=len(first))
            compressor = _Compressor(member, digest)
            try:
                for block in itertools.chain((first, second), blocks):
                    compressor.put(block)
                    size += len(block)
            finally:
                compressor.close()
        return Member.model_construct(path=path, sha256=digest.hexdigest(), bytes=size)

    def close(self) -> tuple[str, int]:
        """Write the central directory; returns the archive's sha256 and size."""
        self._zip.close()
        return self._sink.digest.hexdigest(), self._sink.position


def _blocks(chunks: Iterable[bytes | memoryview]) -> Iterator[bytearray]:
    """``chunks`` joined into blocks of at least :data:`CHUNK` bytes (the last may be
    shorter; at least one, maybe empty)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        if len(buffer) >= CHUNK:
            yield buffer
            buffer = bytearray()
    yield buffer


class _Compressor:
    """A thread that hashes blocks into ``digest`` and writes them to ``member``."""

    def __init__(self, member: IO[bytes], digest: Any) -> None:
        self.member = member
        self.digest = digest
        self.error: BaseException | None = None
        self._queue: queue.Queue[bytearray | None] = queue.Queue(_BLOCKS)
        self._thread = threading.Thread(target=self._run, name="export-deflate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            if self.error is not None:
                continue  # drain: the reader stops at its next put
            try:
                self.digest.update(block)
                self.member.write(block)
            except BaseException as exc:  # handed to the reading thread
                self.error = exc

    def put(self, block: bytearray) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(block)

    def close(self) -> None:
        """Wait for every block; raise what the thread met."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
