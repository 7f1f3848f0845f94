"""WAL archive: push and fetch of WAL files in backup storage, each with its sha256.

A segment ``NAME`` is stored zstd-compressed as ``{prefix}/{target}/wal/{timeline}/NAME.zst``
and is complete once its sidecar ``NAME.zst.sha256`` (the sha256 of the uncompressed bytes,
in ``sha256sum`` format) exists: the sidecar is written last, like a backup's manifest.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import mmap
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amprenta_backup.core.constants import READ_CHUNK
from amprenta_backup.core.errors import (
    ChecksumMismatch,
    StorageError,
    WalConflict,
    WalSegmentMissing,
)
from amprenta_backup.core.layout import target_prefix
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.wal.names import WAL_FILE, check_wal_name

if TYPE_CHECKING:  # imported where used, like zstandard: `amprenta-wal push` stays quick
    from amprenta_backup.core.encryption import KeyService

log = logging.getLogger(__name__)

SUFFIX = ".zst"
CHECKSUM_SUFFIX = ".sha256"


def wal_prefix(prefix: str, target: str) -> str:
    """``{prefix}/{target}/wal/``: every archived WAL file of one target."""
    return f"{target_prefix(prefix, target)}wal/"


def wal_key(prefix: str, target: str, name: str) -> str:
    """Key of one stored WAL file: ``{prefix}/{target}/wal/{timeline}/{name}.zst``."""
    check_wal_name(name)
    return f"{wal_prefix(prefix, target)}{name[:8]}/{name}{SUFFIX}"


def checksum_key(key: str) -> str:
    """Key of the sidecar holding the sha256 of the uncompressed file."""
    return key + CHECKSUM_SUFFIX


_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux only; elsewhere the pages fault in


@contextlib.contextmanager
def mapped(path: str | os.PathLike[str]) -> Iterator[tuple[mmap.mmap | bytes, os.stat_result]]:
    """The file's bytes, mapped from the page cache (PostgreSQL never truncates a file it
    marked ``.ready``), and its ``fstat``: no 16 MiB copy and no fresh buffer's page faults per
    segment (8 of the 19 CPU-ms that reading and hashing a segment took here)."""
    try:
        with open(path, "rb", buffering=0) as handle:
            info = os.fstat(handle.fileno())
            data = mmap.mmap(handle.fileno(), 0, flags=mmap.MAP_SHARED | _POPULATE,
                             prot=mmap.PROT_READ) if info.st_size else None
    except OSError as exc:
        raise StorageError(f"cannot read WAL file {path}: {exc.strerror}") from exc
    if data is None:
        yield b"", info
        return
    with data:
        yield data, info


def still_named(path: str | os.PathLike[str], opened: os.stat_result, name: str) -> None:
    """Raise :class:`FileNotFoundError` unless ``path`` still names the file opened as
    ``opened``. PostgreSQL writes a segment again only after recycling it, which renames it
    (or removes it): while the path names the inode we hold open (so its number cannot be
    reused), the bytes hashed and the bytes compressed, read in two passes, are the same."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        now = None
    if now is None or (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
        raise FileNotFoundError(errno.ENOENT, f"No such file: {name} was recycled by PostgreSQL "
                                "while it was read (so it was archived already)", str(path))


def zstandard_compressor(level: int) -> Any:
    """A compressor of stored segments, without zstd's frame checksum: the sidecar's sha256 of
    the uncompressed bytes is checked on every fetch, and the xxh64 of a 16 MiB segment cost
    4-5 of the 50-60 CPU-ms its compression took (about 10 %; segments stored with it still
    fetch, zstd checks it where it is there)."""
    import zstandard

    return zstandard.ZstdCompressor(level=level, write_checksum=False)


@dataclass(frozen=True)
class PushResult:
    """One push: what was stored, or that identical content was there already."""

    name: str
    key: str
    raw_bytes: int
    stored_bytes: int
    sha256: str
    already_archived: bool = False


class WalArchive:
    """The WAL files of one target in backup storage.

    :param storage: the backup storage
    :param prefix: key prefix of everything stored (``BACKUP_S3_PREFIX``)
    :param target: name the WAL is stored under (``BACKUP_WAL_TARGET``)
    :param level: zstd level for pushed segments
    :param keys: encrypts pushed segments when encryption is on, opens encrypted ones
    """

    def __init__(self, storage: Storage, prefix: str, target: str, level: int = 1,
                 keys: KeyService | None = None) -> None:
        self.storage = storage
        self.prefix = prefix
        self.target = target
        self.level = level
        self.keys = keys

    def key(self, name: str) -> str:
        return wal_key(self.prefix, self.target, name)

    def stored_checksum(self, name: str) -> str | None:
        """The recorded sha256 of an archived file, or None if it is not (completely) stored."""
        sidecar = checksum_key(self.key(name))
        if not self.storage.exists(sidecar):
            return None
        text = self.storage.get_bytes(sidecar).decode("ascii", "replace").split()
        if not text or not re.fullmatch(r"[0-9a-f]{64}", text[0]):
            raise ChecksumMismatch(f"the checksum of {name} at {self.storage.uri(sidecar)} is "
                                   "unreadable; the archive is damaged")
        return text[0]

    def has(self, name: str) -> bool:
        """Whether ``name`` is completely archived."""
        return self.stored_checksum(name) is not None

    def wait_for(self, name: str, timeout: float, poll: float = 1.0) -> bool:
        """Wait until ``name`` is completely archived; False if it is not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.has(name):
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def push(self, path: str | os.PathLike[str], name: str,
             level: int | None = None) -> PushResult:
        """Store the file at ``path`` as ``name``; identical content already there is success.

        :param level: zstd level of this segment (default: the archive's ``level``)

        Raises :class:`WalConflict` if different content is archived under ``name``.
        """
        check_wal_name(name)
        with mapped(path) as (data, opened):
            return self._store(name, data, lambda: still_named(path, opened, name),
                               self.level if level is None else level)

    def _store(self, name: str, data: mmap.mmap | bytes, unchanged: Callable[[], None],
               level: int) -> PushResult:
        from amprenta_backup.core.encryption import seal_for, wal_identity

        digest = hashlib.sha256(data).hexdigest()
        key = self.key(name)
        existing = self.stored_checksum(name)
        if existing == digest:
            log.info("%s is already archived with the same content", name)
            return PushResult(name, key, len(data), 0, digest, already_archived=True)
        if existing is not None:
            raise WalConflict(
                f"{name} is already archived at {self.storage.uri(key)} with different content "
                f"(sha256 {existing[:12]}... there, {digest[:12]}... here); refusing to overwrite. "
                "Two clusters probably archive under the same BACKUP_WAL_TARGET: give each its "
                "own, or move the old archive away after checking which cluster it belongs to"
            )
        stored = zstandard_compressor(level).compress(data)
        unchanged()  # both passes read the segment PostgreSQL marked ready
        seal = seal_for(self.keys, wal_identity(self.target, name))
        if seal is not None:  # a data key of its own per segment
            stored = seal.seal(stored)
        self.storage.put_bytes(key, stored)
        self.storage.put_bytes(checksum_key(key), f"{digest}  {name}\n".encode())
        log.info("archived %s: %d -> %d bytes (zstd level %d)", name, len(data), len(stored),
                 level)
        return PushResult(name, key, len(data), len(stored), digest)

    def fetch(self, name: str, dest: str | os.PathLike[str]) -> str:
        """Write archived ``name`` to ``dest`` after checking its sha256; returns the sha256.

        Raises :class:`WalSegmentMissing` if it is not archived and :class:`ChecksumMismatch`
        if the stored bytes are damaged (``dest`` is then not created).
        """
        import zstandard

        from amprenta_backup.core.encryption import open_if_sealed, wal_identity

        key = self.key(name)
        expected = self.stored_checksum(name)
        if expected is None:
            where = self.storage.uri(key)
            if self.storage.exists(key):
                raise WalSegmentMissing(f"{name} at {where} has no checksum: its push never "
                                        "finished, so it is not usable")
            raise WalSegmentMissing(f"{name} is not in the WAL archive at {where}")
        target = Path(dest)
        partial = target.with_name(f"{target.name}.amprenta-partial")
        sha = hashlib.sha256()
        try:
            with self.storage.open_reader(key) as raw, open(partial, "wb") as out:
                plain = open_if_sealed(raw, self.keys, wal_identity(self.target, name),
                                       self.storage.uri(key))
                reader = zstandard.ZstdDecompressor().stream_reader(plain)  # type: ignore[arg-type]
                while chunk := reader.read(READ_CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
        except zstandard.ZstdError as exc:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatch(f"{name} at {self.storage.uri(key)} is corrupt (zstd: {exc}); "
                                   "this WAL file cannot be used for recovery") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if sha.hexdigest() != expected:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatch(
                f"{name} at {self.storage.uri(key)} fails its checksum (sha256 "
                f"{sha.hexdigest()[:12]}... instead of {expected[:12]}...); this WAL file cannot "
                "be used for recovery")
        os.replace(partial, target)
        return expected

    def list_names(self, timeline: str | None = None) -> Iterator[str]:
        """Names of the completely archived WAL files, sorted, optionally of one timeline."""
        prefix = wal_prefix(self.prefix, self.target) + (f"{timeline}/" if timeline else "")
        names = []
        for info in self.storage.list_objects(prefix):
            if info.key.endswith(SUFFIX + CHECKSUM_SUFFIX):
                name = info.key.rsplit("/", 1)[-1][: -len(SUFFIX + CHECKSUM_SUFFIX)]
                if WAL_FILE.match(name):
                    names.append(name)
        yield from sorted(names)
