"""The streaming pipeline: a client tool's stdout -> zstd -> sha256 -> storage, in one pass;
and the pipe helpers that feed stored bytes back into a client tool's stdin."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

import zstandard

from amprenta_backup.core.constants import DEFAULT_COMPRESSION_LEVEL, READ_CHUNK, ZSTD_JOB_SIZE
from amprenta_backup.core.encryption import ObjectSeal
from amprenta_backup.core.encryption.stream import EncryptingWriter
from amprenta_backup.core.errors import DumpError
from amprenta_backup.core.models import human_bytes
from amprenta_backup.core.storage.base import ObjectWriter

log = logging.getLogger(__name__)


StreamProgress = Callable[[int, int], None]
"""Called as a dump streams with the bytes read from the tool and the bytes stored so far."""
PROGRESS_LOG_SECONDS = 30.0


class InfoLogger(Protocol):
    """What :class:`ProgressLog` writes to: a ``logging.Logger``, an Airflow task's log."""

    def info(self, event: Any, *args: Any, **kw: Any) -> Any: ...


class ProgressLog:
    """A :data:`StreamProgress` for logs (an Airflow task's): a line every ``every`` seconds
    with the bytes read and stored, the rate and the time elapsed.

    :param label: what streams, e.g. ``backup of pg_main``
    :param logger: where the lines go
    :param every: seconds between lines
    """

    def __init__(self, label: str, logger: InfoLogger, every: float = PROGRESS_LOG_SECONDS
                 ) -> None:
        self.label, self.logger, self.every = label, logger, every
        self.started = self._logged = time.monotonic()

    def __call__(self, read: int, stored: int) -> None:
        now = time.monotonic()
        if now - self._logged >= self.every:
            self._logged = now
            self.logger.info("%s", self.line(read, stored, now - self.started))

    def line(self, read: int, stored: int, seconds: float) -> str:
        return (f"{self.label}: {human_bytes(read)} read, {human_bytes(stored)} stored, "
                f"{human_bytes(read / max(seconds, 1e-6))}/s, {seconds:.0f} s elapsed")


class _CountingReader:
    """The tool's stdout, counting what is read and reporting it with the bytes stored."""

    def __init__(self, source: IO[bytes], sink: HashingWriter, progress: StreamProgress) -> None:
        self._source, self._sink, self._progress = source, sink, progress
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.count += len(data)
        self._progress(self.count, self._sink.count)
        return data


@dataclass(frozen=True)
class StreamResult:
    """What went through the pipeline."""

    raw_bytes: int
    stored_bytes: int
    sha256: str | None


class HashingWriter:
    """Counts and hashes bytes on their way to an :class:`ObjectWriter`."""

    def __init__(self, target: ObjectWriter, checksum: bool) -> None:
        self._target = target
        self._sha = hashlib.sha256() if checksum else None
        self.count = 0

    def write(self, data: bytes) -> int:
        if self._sha is not None:
            self._sha.update(data)
        self.count += len(data)
        self._target.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: every write already went to the target."""

    @property
    def hexdigest(self) -> str | None:
        return self._sha.hexdigest() if self._sha is not None else None


class StderrTail(threading.Thread):
    """Drains a child's stderr so it never blocks, keeping the last few KiB."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self.text = ""

    def run(self) -> None:
        data = self._stream.read()
        self.text = data[-4000:].decode("utf-8", "replace").strip()


def widen_pipe(fd: int) -> None:
    """Grow a pipe to 1 MiB (Linux): fewer context switches per MiB fed to a client tool."""
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), READ_CHUNK)
    except OSError:  # over /proc/sys/fs/pipe-max-size, or not Linux: keep the default
        pass


SENDFILE_TO_PIPE = hasattr(os, "sendfile")
"""Whether ``os.sendfile`` writes into a pipe, as on Linux. The first call that finds it
cannot (macOS wants a socket) sets it False for the process; a test sets it False to copy
through Python."""
_NO_SENDFILE = {errno.EINVAL, errno.ENOTSOCK, errno.ENOSYS, errno.EOPNOTSUPP,
                getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


def send_to_pipe(out: int, fd: int, offset: int, count: int) -> int:
    """Copy up to ``count`` bytes of the file ``fd`` from ``offset`` into the pipe ``out``:
    in the kernel by ``sendfile`` where the system can, else by ``pread`` and ``write``. The
    bytes copied, 0 at the end of the file; BrokenPipeError once the reader has gone."""
    global SENDFILE_TO_PIPE
    if SENDFILE_TO_PIPE:
        try:
            return os.sendfile(out, fd, offset, count)
        except OSError as exc:
            if exc.errno not in _NO_SENDFILE:
                raise
            SENDFILE_TO_PIPE = False
            log.info("os.sendfile cannot write into a pipe here (%s): copying through Python",
                     exc)
    data = rest = memoryview(os.pread(fd, count, offset))
    while rest:
        rest = rest[os.write(out, rest):]
    return len(data)


@dataclass(frozen=True)
class Compression:
    """zstd settings; ``enabled=False`` stores the bytes as they come.

    :param enabled: compress with zstd
    :param level: zstd level
    :param threads: zstd worker threads (0 = compress in the calling thread)
    """

    enabled: bool = True
    level: int = DEFAULT_COMPRESSION_LEVEL
    threads: int = 2

    @property
    def name(self) -> str:
        return f"zstd:{self.level}" if self.enabled else "none"

    def parameters(self) -> zstandard.ZstdCompressionParameters:
        """zstd parameters; small multi-threaded jobs keep memory near 20 MB instead of 64 MB
        at the same speed and ratio (measured on 2 threads)."""
        extra = {"job_size": ZSTD_JOB_SIZE} if self.threads else {}
        return zstandard.ZstdCompressionParameters.from_level(
            self.level, threads=self.threads, write_checksum=1, **extra)


def stream_command(
    argv: Sequence[str],
    env: dict[str, str],
    writer: ObjectWriter,
    compression: Compression,
    checksum: bool = True,
    seal: ObjectSeal | None = None,
    progress: StreamProgress | None = None,
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> StreamResult:
    """Run ``argv`` and stream its stdout into ``writer``; the caller commits or aborts.
    ``progress`` hears of the bytes read and stored after each read; ``started`` gets the
    tool's process as soon as it runs (a caller running several can stop them all).

    With ``seal`` the compressed bytes are encrypted before they are hashed and stored.
    Raises :class:`DumpError` with the tool's stderr if it exits non-zero.
    """
    proc = subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    if started is not None:
        started(proc)
    tail = StderrTail(proc.stderr)
    tail.start()
    sink = HashingWriter(writer, checksum)
    out: HashingWriter | EncryptingWriter = sink if seal is None else seal.writer(sink)
    source: IO[bytes] | _CountingReader = proc.stdout
    if progress is not None:
        source = _CountingReader(proc.stdout, sink, progress)
    try:
        if compression.enabled:
            cctx = zstandard.ZstdCompressor(compression_params=compression.parameters())
            raw, _ = cctx.copy_stream(
                source, out, read_size=READ_CHUNK, write_size=READ_CHUNK  # type: ignore[arg-type]
            )
        else:
            raw = _copy_counting(source, out)
        if isinstance(out, EncryptingWriter):
            out.close()
    except BaseException:
        proc.kill()
        proc.wait()
        tail.join(timeout=5)
        raise
    code = proc.wait()
    tail.join(timeout=30)
    if code != 0:
        name = argv[0].rsplit("/", 1)[-1]
        raise DumpError(f"{name} exited with code {code}: {tail.text or 'no message'}")
    if progress is not None:
        progress(raw, sink.count)  # the final figures, once everything is stored
    return StreamResult(raw_bytes=raw, stored_bytes=sink.count, sha256=sink.hexdigest)


def _copy_counting(source: IO[bytes] | _CountingReader,
                   sink: HashingWriter | EncryptingWriter) -> int:
    total = 0
    while chunk := source.read(READ_CHUNK):
        sink.write(chunk)
        total += len(chunk)
    return total

