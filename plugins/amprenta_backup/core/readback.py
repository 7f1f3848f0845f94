"""Read a stored dump back in one pass: sha256 and size of the stored bytes, decompressed on
the way into a consumer (pg_restore's stdin, a file, or nowhere)."""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import zstandard

from amprenta_backup.core.constants import PHYSICAL_TAR_FORMAT, READ_CHUNK
from amprenta_backup.core.encryption import (
    DecryptingReader,
    KeyService,
    TamperedObject,
    backup_identity,
    decrypting,
    envelope_of,
    open_key,
)
from amprenta_backup.core.errors import ChecksumMismatch, PreconditionError, StorageError
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.pipeline import (  # the pipeline's stderr drain and pipes, reused
    StderrTail,
    send_to_pipe,
    widen_pipe,
)
from amprenta_backup.core.storage.base import Storage

Progress = Callable[[int], None]
"""Called with the number of stored bytes read so far."""

Sink = Callable[[bytes], object]


@dataclass(frozen=True)
class Readback:
    """What one read of a stored dump saw.

    :param stored_bytes: bytes read from storage
    :param sha256: sha256 of those bytes
    :param raw_bytes: bytes after decompression (``None`` when not decompressed)
    :param error: why decompression failed, if it did
    """

    stored_bytes: int
    sha256: str
    raw_bytes: int | None = None
    error: str | None = None

    def mismatches(self, manifest: Manifest) -> list[str]:
        """Everything that differs from the manifest, in words; empty when intact."""
        problems: list[str] = []
        if manifest.sha256 and self.sha256 != manifest.sha256:
            problems.append(f"sha256 of the stored bytes is {self.sha256}, the manifest says "
                            f"{manifest.sha256}")
        if self.stored_bytes != manifest.stored_bytes:
            problems.append(f"{self.stored_bytes} bytes are stored, the manifest says "
                            f"{manifest.stored_bytes}")
        if self.error:
            problems.append(f"decryption or decompression failed: {self.error}")
        elif (self.raw_bytes is not None and self.raw_bytes != manifest.raw_bytes
              and manifest.format != PHYSICAL_TAR_FORMAT):  # a tar's files: verify counts them
            problems.append(f"the dump decompresses to {self.raw_bytes} bytes, the manifest "
                            f"says {manifest.raw_bytes}")
        return problems


class _HashingReader(threading.Thread):
    """Reads a stored object ahead in its own thread, hashing and counting every byte, and
    hands the bytes out through :meth:`read`.

    Storage I/O and sha256 (both release the GIL) overlap with decompression and the pipe to
    pg_restore in the caller's thread; at most ``depth`` chunks of 1 MiB wait in between.
    """

    def __init__(self, raw: BinaryIO, progress: Progress | None, depth: int = 4) -> None:
        super().__init__(daemon=True, name="readback")
        self._raw = raw
        self._sha = hashlib.sha256()
        self._progress = progress
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._halt = threading.Event()
        self._pending = b""
        self._ended = False
        self.count = 0

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                data = self._raw.read(READ_CHUNK)
                self._sha.update(data)
                self.count += len(data)
                if self._progress is not None and data:
                    self._progress(self.count)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # handed to the reading thread
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def read(self, size: int = -1) -> bytes:
        if self._ended:
            return b""
        if not self._pending:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                self._ended = True
                return b""
            self._pending = item
        size = len(self._pending) if size is None or size < 0 else size
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def drain(self) -> None:
        """Read to the end, so every stored byte is hashed; then the thread is done."""
        while self.read(READ_CHUNK):
            pass
        self.join()

    def stop(self) -> None:
        self._halt.set()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def data_key(keys: KeyService | None, manifest: Manifest) -> bytes | None:
    """The data key of an encrypted backup's dump (None: not encrypted); KeyUnavailable,
    naming the key id and the fix, when it cannot be opened."""
    envelope = envelope_of(manifest.encryption)
    if envelope is None:
        return None
    return open_key(keys, envelope, backup_identity(manifest.backup_id, manifest.key),
                    f"backup {manifest.backup_id} of target {manifest.target}")


def read_back(storage: Storage, manifest: Manifest, sink: Sink | None = None,
              decompress: bool = True, progress: Progress | None = None,
              keys: KeyService | None = None) -> Readback:
    """Read ``manifest.key`` once, hashing every stored byte, and hand its content to ``sink``.

    With ``decompress`` the sink gets the decompressed dump through a bounded zstd reader
    (1 MiB reads, memory independent of the compression ratio), decrypted first (every
    chunk's tag checked) if the backup is encrypted; otherwise the stored bytes. Damaged data
    is reported in the result, never raised; a storage failure raises :class:`StorageError`,
    a key that cannot be had :class:`KeyUnavailable` (before anything is read).
    """
    key = data_key(keys, manifest) if decompress else None
    with storage.open_reader(manifest.key) as raw:
        reader = _HashingReader(raw, progress)
        reader.start()
        raw_count: int | None = None
        error: str | None = None
        try:
            if decompress:
                raw_count = 0
                try:
                    for chunk in _content(_plain(reader, manifest, key, storage),
                                          compressed=manifest.compression != "none"):
                        raw_count += len(chunk)
                        if sink is not None:
                            sink(chunk)
                except (zstandard.ZstdError, TamperedObject) as exc:
                    error = str(exc)
            else:
                while chunk := reader.read(READ_CHUNK):
                    if sink is not None:
                        sink(chunk)
            reader.drain()  # bytes after a damaged or early-ending frame still count
        finally:
            reader.stop()
    return Readback(reader.count, reader.hexdigest(), raw_count, error)


def _plain(reader: _HashingReader, manifest: Manifest, key: bytes | None,
           storage: Storage) -> _HashingReader | DecryptingReader:
    envelope = envelope_of(manifest.encryption)
    if envelope is None or key is None:
        return reader
    return decrypting(reader, key, envelope, backup_identity(manifest.backup_id, manifest.key),
                      storage.uri(manifest.key))


def _content(reader: _HashingReader | DecryptingReader, compressed: bool) -> Iterator[bytes]:
    if not compressed:
        while chunk := reader.read(READ_CHUNK):
            yield chunk
        return
    stream = zstandard.ZstdDecompressor().stream_reader(
        reader, read_size=READ_CHUNK, read_across_frames=True,  # type: ignore[arg-type]
        closefd=False)
    while chunk := stream.read(READ_CHUNK):
        yield chunk


class ToolInput:
    """A client tool (``pg_restore``) reading our bytes on its stdin.

    Writing after the tool has exited is not an error: the caller keeps reading (and hashing)
    the object, then :meth:`finish` reports the tool's exit code and the end of its stderr.

    :param argv: the command; never holds a password
    :param env: its environment (libpq settings, ``PGPASSWORD``)
    :param stdout: ``subprocess.PIPE`` to keep what it prints (:meth:`read_stdout`)
    """

    def __init__(self, argv: Sequence[str], env: dict[str, str],
                 stdout: int | None = None) -> None:
        self.name = Path(argv[0]).name
        self._proc = subprocess.Popen(list(argv), env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL if stdout is None else stdout,
                                      stderr=subprocess.PIPE)
        assert self._proc.stdin is not None and self._proc.stderr is not None
        self._stdin = self._proc.stdin
        widen_pipe(self._stdin.fileno())
        self._tail = StderrTail(self._proc.stderr)
        self._tail.start()
        self.closed_early = False

    def __call__(self, data: bytes) -> None:
        if self.closed_early:
            return
        try:
            self._stdin.write(data)
        except BrokenPipeError:
            self.closed_early = True

    def send(self, fd: int, offset: int, count: int) -> int:
        """Copy up to ``count`` bytes of the file ``fd`` from ``offset`` to the tool's stdin
        (:func:`~amprenta_backup.core.pipeline.send_to_pipe`: in the kernel where it can); the
        bytes sent, 0 once the tool has stopped reading or the file ends. Not to be mixed
        with buffered writes."""
        if self.closed_early:
            return 0
        try:
            return send_to_pipe(self._stdin.fileno(), fd, offset, count)
        except BrokenPipeError:
            self.closed_early = True
            return 0

    def close_input(self) -> None:
        """End the tool's stdin (it sees end of file); :meth:`finish` still waits for it."""
        try:
            self._stdin.close()
        except BrokenPipeError:
            self.closed_early = True

    def read_stdout(self) -> bytes:
        """Everything the tool prints, once it closes its stdout (empty unless kept)."""
        return self._proc.stdout.read() if self._proc.stdout is not None else b""

    def finish(self) -> tuple[int, str]:
        """Close stdin, wait for the tool; returns its exit code and the end of its stderr."""
        self.close_input()
        code = self._proc.wait()
        self._tail.join(timeout=30)
        return code, self._tail.text

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._tail.join(timeout=5)

    def __enter__(self) -> ToolInput:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.kill()


def check_free_space(folder: Path, needed: int, hint: str) -> None:
    """PreconditionError unless ``folder`` has ``needed`` bytes free (plus 5 %)."""
    free = shutil.disk_usage(folder).free
    if free < needed * 1.05:
        raise PreconditionError(
            f"{folder} has {free} bytes free, {int(needed * 1.05)} are needed; {hint}")


def part_paths(manifest: Manifest, path: Path) -> list[Path]:
    """Where :func:`download` writes each object: ``path`` for the first, and beside it
    ``{stem}-data-01{suffix}`` ... for the data-only parts of a parallel dump."""
    return [path] + [path.with_name(f"{path.stem}-data-{i:02d}{path.suffix}")
                     for i in range(1, len(manifest.objects()))]


def download(storage: Storage, manifest: Manifest, path: Path, decompress: bool = True,
             progress: Progress | None = None, durable: bool = True,
             keys: KeyService | None = None) -> Readback:
    """Write the dump to ``path`` as :func:`download_object` does; each object of a parallel
    dump to its own file (:func:`part_paths`), all of them or none. The result's sizes are
    the totals, its sha256 the first object's."""
    if not manifest.parts:
        return download_object(storage, manifest, path, decompress, progress, durable, keys)
    paths = part_paths(manifest, path)
    taken = [str(p) for p in paths if p.exists()]
    if taken:
        raise PreconditionError(f"{', '.join(taken)} already exist(s); remove or choose another "
                                "path (a parallel backup is written as one file per part)")
    results: list[Readback] = []
    try:
        for obj, target in zip(manifest.objects(), paths, strict=True):
            done = sum(r.stored_bytes for r in results)
            step = None if progress is None else (lambda n, base=done: progress(base + n))
            results.append(download_object(storage, obj, target, decompress, step, durable,
                                           keys))
    except BaseException:
        for written in paths[:len(results)]:
            written.unlink(missing_ok=True)
        raise
    raw = [r.raw_bytes for r in results]
    return Readback(sum(r.stored_bytes for r in results), results[0].sha256,
                    None if None in raw else sum(r or 0 for r in raw))


def download_object(storage: Storage, manifest: Manifest, path: Path, decompress: bool = True,
                    progress: Progress | None = None, durable: bool = True,
                    keys: KeyService | None = None) -> Readback:
    """Write one dump object (decompressed, or as stored) to ``path``, proven intact before it
    appears.

    The bytes go to a ``.partial`` file beside ``path``; only if the sha256 and sizes match
    the manifest is it renamed into place. Otherwise it is removed and
    :class:`ChecksumMismatch` says what did not match. An existing ``path`` is refused.
    """
    if path.exists():
        raise PreconditionError(f"{path} already exists; remove it or choose another path")
    if not path.parent.is_dir():
        raise PreconditionError(f"folder {path.parent} does not exist; create it first")
    needed = manifest.raw_bytes if decompress else manifest.stored_bytes
    if decompress:
        data_key(keys, manifest)  # a missing key fails before a byte is written
    check_free_space(path.parent, needed, "free some space or choose another folder")
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with open(partial, "xb") as out:
            result = read_back(storage, manifest, out.write, decompress, progress, keys)
            out.flush()
            if durable:  # a temporary file for pg_restore need not survive a power cut
                os.fsync(out.fileno())
        problems = result.mismatches(manifest)
        if problems:
            raise ChecksumMismatch(
                f"backup {manifest.backup_id} of target {manifest.target} is corrupt: "
                + "; ".join(problems) + f" ({storage.uri(manifest.key)}); nothing was written "
                "to " + str(path))
        os.replace(partial, path)
    except OSError as exc:
        raise StorageError(f"writing {path} failed: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return result
