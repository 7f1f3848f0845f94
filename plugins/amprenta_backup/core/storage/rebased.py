"""A storage seen under another key prefix: the second copy, read with the primary's keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO

from amprenta_backup.core.models import ObjectInfo
from amprenta_backup.core.storage.base import IncompleteUpload, ObjectWriter, Storage


def _join(prefix: str, rest: str) -> str:
    return "/".join(p for p in (prefix, rest) if p)


class RebasedStorage(Storage):
    """``inner`` with every key under ``seen`` (the primary's prefix) kept under ``stored`` (the
    copy's prefix) instead: a manifest copied byte for byte names its dump by the primary's
    key, and verify, restore and drills read the copy through this view unchanged.

    URIs are the real ones of ``inner``, so messages name where the bytes are.

    :param inner: the storage that holds the objects
    :param seen: the key prefix callers use (``BACKUP_S3_PREFIX``)
    :param stored: the key prefix in ``inner`` (``BACKUP_COPY_S3_PREFIX``)
    """

    def __init__(self, inner: Storage, seen: str, stored: str) -> None:
        self.inner = inner
        self.seen = seen.strip("/")
        self.stored = stored.strip("/")

    def stored_key(self, key: str) -> str:
        """The key in ``inner`` of ``key``."""
        if not self.seen:
            return _join(self.stored, key)
        if key == self.seen or key.startswith(self.seen + "/"):
            return _join(self.stored, key[len(self.seen):].strip("/"))
        return key  # outside the prefix (a probe): kept as it is

    def seen_key(self, key: str) -> str | None:
        """The key callers use for ``inner``'s ``key``; None if it is outside ``stored``."""
        if not self.stored:
            return _join(self.seen, key)
        if key == self.stored or key.startswith(self.stored + "/"):
            return _join(self.seen, key[len(self.stored):].strip("/"))
        return None

    def uri(self, key: str = "") -> str:
        return self.inner.uri(self.stored_key(key))

    def key_of(self, uri: str) -> str | None:
        key = self.inner.key_of(uri)
        return None if key is None else self.seen_key(key)

    def open_writer(self, key: str, expected_size: int | None = None) -> ObjectWriter:
        return self.inner.open_writer(self.stored_key(key), expected_size)

    def open_reader(self, key: str) -> BinaryIO:
        return self.inner.open_reader(self.stored_key(key))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for info in self.inner.list_objects(self.stored_key(prefix) if prefix else self.stored):
            key = self.seen_key(info.key)
            if key is not None and key.startswith(prefix):
                yield ObjectInfo(key, info.size, info.last_modified)

    def delete(self, keys: list[str]) -> None:
        self.inner.delete([self.stored_key(k) for k in keys])

    def exists(self, key: str) -> bool:
        return self.inner.exists(self.stored_key(key))

    def check_ready(self) -> None:
        self.inner.check_ready()

    def retention_until(self, key: str) -> datetime | None:
        return self.inner.retention_until(self.stored_key(key))

    def list_incomplete_uploads(self, prefix: str = "") -> list[IncompleteUpload]:
        return self.inner.list_incomplete_uploads(self.stored_key(prefix))

    def abort_upload(self, upload: IncompleteUpload) -> None:
        self.inner.abort_upload(upload)
