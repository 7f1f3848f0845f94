"""The storage interface every backend implements."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import BinaryIO

from amprenta_backup.core.models import ObjectInfo


@dataclass(frozen=True)
class IncompleteUpload:
    """An upload that never finished: an S3 multipart upload or a local ``*.partial`` file.

    :param key: the key it was meant to become (for local storage, the partial file's key)
    :param upload_id: the S3 upload id, or the partial file's name
    :param initiated: when it started
    """

    key: str
    upload_id: str
    initiated: datetime


class ObjectWriter(abc.ABC):
    """A streaming write of one object: nothing is visible under the key until ``commit()``.

    Used as a context manager, a block that raises aborts the write.
    """

    def __init__(self) -> None:
        self._done = False

    @abc.abstractmethod
    def write(self, data: bytes) -> int:
        """Append bytes; returns how many were taken."""

    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def _abort(self) -> None: ...

    def commit(self) -> None:
        """Make the object visible under its key."""
        if not self._done:
            self._commit()
            self._done = True

    def abort(self) -> None:
        """Throw away everything written; safe to call more than once."""
        if not self._done:
            self._done = True
            self._abort()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.commit()


class Storage(abc.ABC):
    """Where backups live. Keys are ``/``-separated paths relative to the storage root."""

    @abc.abstractmethod
    def uri(self, key: str = "") -> str:
        """A human-readable URI for a key (``s3://bucket/key`` or ``file:///path``)."""

    @abc.abstractmethod
    def open_writer(self, key: str, expected_size: int | None = None) -> ObjectWriter:
        """Start a streaming write of ``key`` with bounded memory.

        :param expected_size: about how many bytes will be written, if known (S3 part sizes)
        """

    @abc.abstractmethod
    def open_reader(self, key: str) -> BinaryIO:
        """Stream an object's bytes; raises :class:`StorageError` if it is missing."""

    @abc.abstractmethod
    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``."""

    @abc.abstractmethod
    def delete(self, keys: list[str]) -> None:
        """Delete objects; missing keys are not an error."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object in one call."""
        with self.open_writer(key) as writer:
            writer.write(data)

    def get_bytes(self, key: str) -> bytes:
        """Read a small object whole."""
        with self.open_reader(key) as reader:
            return reader.read()

    @abc.abstractmethod
    def check_ready(self) -> None:
        """Raise :class:`StorageError` naming the setting to fix unless storage is usable."""

    def key_of(self, uri: str) -> str | None:
        """The key whose :meth:`uri` is ``uri`` (slashes at the ends dropped), or None if
        ``uri`` lies outside this storage."""
        root = self.uri("").rstrip("/") + "/"
        return uri[len(root):].strip("/") if uri.startswith(root) else None

    def retention_until(self, key: str) -> datetime | None:
        """Until when a WORM lock (S3 Object Lock) forbids deleting ``key``; None if unlocked."""
        return None

    def list_incomplete_uploads(self, prefix: str = "") -> list[IncompleteUpload]:
        """Uploads under ``prefix`` that were started and never finished or aborted."""
        return []

    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Throw away an unfinished upload and the space it holds."""
        raise NotImplementedError(f"{type(self).__name__} lists no unfinished uploads")

    def check_writable(self, prefix: str = "") -> None:
        """Raise :class:`StorageError` unless ``prefix`` can be written (a probe object)."""
        probe = "/".join(p for p in (prefix.strip("/"), ".amprenta-probe") if p)
        self.put_bytes(probe, b"ok")
        self.delete([probe])
