"""Backup storage in a local (or mounted) folder."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from amprenta_backup.core.errors import ObjectMissing, StorageError, StorageNotReady
from amprenta_backup.core.models import ObjectInfo
from amprenta_backup.core.storage.base import IncompleteUpload, ObjectWriter, Storage

PARTIAL_SUFFIX = ".partial"


def _describe_oserror(action: str, path: Path, exc: OSError) -> str:
    """What failed, where, and for a full disk how much space is left and what to do."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        try:
            free = f"{shutil.disk_usage(path.parent).free} bytes free"
        except OSError:
            free = "free space unknown"
        return (f"{action} {path} failed: {exc.strerror} ({free} in {path.parent}); free "
                "space there or point BACKUP_LOCAL_PATH at a bigger disk")
    return f"{action} {path} failed: {exc.strerror or exc}"


def prune_empty_folders(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents while they are empty, stopping at ``root``."""
    while folder != root and root in folder.parents and folder.is_dir():
        try:
            folder.rmdir()
        except OSError:  # not empty (another backup) or already gone
            return
        folder = folder.parent


class _LocalWriter(ObjectWriter):
    """Writes ``<key>.<random>.partial``, fsyncs, then renames into place.

    A failed or aborted write removes its partial file and the folders it created.
    """

    def __init__(self, path: Path, root: Path) -> None:
        super().__init__()
        self._path = path
        self._root = root
        self._tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        except OSError as exc:
            prune_empty_folders(path.parent, root)
            raise StorageError(_describe_oserror("cannot write to", path.parent, exc)) from exc

    def write(self, data: bytes) -> int:
        try:
            return self._file.write(data)
        except OSError as exc:
            raise StorageError(_describe_oserror("writing", self._path, exc)) from exc

    def _commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._path)
            dir_fd = os.open(self._path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            self._abort()
            raise StorageError(_describe_oserror("finishing", self._path, exc)) from exc

    def _abort(self) -> None:
        try:
            self._file.close()  # flushes what is buffered: fails again on a full disk
        except OSError:
            pass  # the file is closed all the same; it is thrown away below
        self._tmp.unlink(missing_ok=True)
        prune_empty_folders(self._path.parent, self._root)


class LocalStorage(Storage):
    """Backups under a folder.

    :param root: absolute folder that holds every key
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise StorageError(f"refusing key {key!r}: '.' and '..' are not allowed in keys")
        return self.root.joinpath(*parts)

    def uri(self, key: str = "") -> str:
        return self._path(key).as_uri() if self.root.is_absolute() else str(self._path(key))

    def open_writer(self, key: str, expected_size: int | None = None) -> ObjectWriter:
        return _LocalWriter(self._path(key), self.root)

    def open_reader(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise ObjectMissing(f"object not found: {self.uri(key)}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self.uri(key)}: {exc.strerror}") from exc

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.exists():
            return
        for dirpath, _dirs, files in os.walk(self.root):
            for name in sorted(files):
                full = Path(dirpath, name)
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix) and not name.endswith(PARTIAL_SUFFIX):
                    stat = full.stat()
                    yield ObjectInfo(
                        key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)
                    )

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            prune_empty_folders(path.parent, self.root)

    def list_incomplete_uploads(self, prefix: str = "") -> list[IncompleteUpload]:
        """``*.partial`` files left by writes that never finished (a killed process)."""
        if not self.root.exists():
            return []
        found = []
        for path in sorted(self.root.rglob(f"*{PARTIAL_SUFFIX}")):
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix) and path.is_file():
                found.append(IncompleteUpload(key, path.name, datetime.fromtimestamp(
                    path.stat().st_mtime, UTC)))
        return found

    def abort_upload(self, upload: IncompleteUpload) -> None:
        self.delete([upload.key])

    def check_ready(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageNotReady(
                f"cannot create the backup folder {self.root} ({exc.strerror}); fix "
                "BACKUP_LOCAL_PATH or the folder's permissions"
            ) from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageNotReady(
                f"the backup folder {self.root} is not writable; fix BACKUP_LOCAL_PATH or the "
                "folder's permissions"
            )

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()
