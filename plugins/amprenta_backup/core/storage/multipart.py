"""Streaming S3 multipart upload: growing parts, bounded memory, a bound on how long it stalls."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from amprenta_backup.core.errors import StorageError
from amprenta_backup.core.storage.base import ObjectWriter

if TYPE_CHECKING:
    from amprenta_backup.core.storage.s3 import S3Storage

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_PART = 5 * MIB  # S3: every part but the last
MAX_PART = 5 * 1024 * MIB  # S3: 5 GiB
MAX_PARTS = 10_000
GROWTH_EVERY = 1000  # parts between two doublings of the part size
ABORT_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 0.0)
ABORT_SECONDS = 30.0  # the longest a failed upload spends aborting; then weekly cleanup's turn
T = TypeVar("T")


@dataclass(frozen=True)
class PartSizer:
    """Part sizes that grow with the object, so that 10,000 parts hold any S3 object.

    The first part size covers the expected size in the first ``growth_every * 2`` parts
    (never under ``start``); it doubles every ``growth_every`` parts, up to 5 GiB. From an
    8 MiB start, 10,000 parts hold 8 TiB (S3's largest object is 5 TiB); memory stays near
    ``part size * (in flight + 1)``, so small objects keep small parts.

    :param start: the smallest first part size (5 MiB .. 5 GiB)
    :param growth_every: parts between two doublings
    :param expected: the expected object size in bytes (e.g. ``pg_database_size``), if known
    """

    start: int = 8 * MIB
    growth_every: int = GROWTH_EVERY
    expected: int | None = None

    def first(self) -> int:
        size = max(self.start, -(-(self.expected or 0) // (2 * self.growth_every)))
        return min(-(-size // MIB) * MIB, MAX_PART)

    def size_of(self, number: int) -> int:
        """The size of part ``number`` (1-based)."""
        doublings = min((number - 1) // self.growth_every, 40)
        return min(self.first() << doublings, MAX_PART)

    def capacity(self, parts: int = MAX_PARTS) -> int:
        """Bytes that ``parts`` parts hold."""
        return sum(self.size_of(n) for n in range(1, parts + 1))


def run_in_thread(fn: Callable[[], T], name: str) -> Future[T]:
    """Run ``fn`` in a daemon thread: a call stuck on a frozen endpoint never holds up exit
    (a ThreadPoolExecutor's workers are joined at interpreter exit)."""
    future: Future[T] = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the waiting thread
                future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class MultipartWriter(ObjectWriter):
    """Uploads growing parts as they fill, at most ``in_flight`` at once.

    An object smaller than one part is sent with a single ``PutObject``. If no part finishes
    for ``stall_seconds`` the upload fails (a frozen endpoint, a stuck proxy).

    :param storage: the S3 storage (client, bucket, encryption)
    :param key: the object's key
    :param sizer: the part sizes
    :param in_flight: parts uploaded at the same time
    :param stall_seconds: longest wait for the next part to finish
    """

    def __init__(self, storage: S3Storage, key: str, sizer: PartSizer, in_flight: int,
                 stall_seconds: float) -> None:
        super().__init__()
        self._s3 = storage
        self._key = key
        self._sizer = sizer
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._slots = threading.BoundedSemaphore(in_flight)
        self._stall = stall_seconds
        self._stalled = False

    @property
    def _next_size(self) -> int:
        return self._sizer.size_of(len(self._parts) + 1)

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= self._next_size:
            self._submit(self._next_size)
        return len(data)

    def _take(self, size: int) -> bytes:
        """Move the first ``size`` buffered bytes out, copying them once."""
        with memoryview(self._buffer) as view:
            chunk = bytes(view[:size])
        del self._buffer[:size]
        return chunk

    def _start(self) -> str:
        if self._upload_id is None:
            resp = self._s3.call("starting the upload of", self._key, "create_multipart_upload",
                                 Key=self._key, **self._s3.write_args())
            self._upload_id = str(resp["UploadId"])
        return self._upload_id

    def _stalled_error(self, what: str) -> StorageError:
        self._stalled = True
        return StorageError(
            f"{what} {self._s3.uri(self._key)} at {self._s3.endpoint} made no progress for "
            f"{self._stall:.0f} s (BACKUP_S3_STALL_SECONDS); the endpoint or a proxy in "
            "between is not answering: check it, then retry")

    def _submit(self, size: int) -> None:
        """Upload the first ``size`` buffered bytes as the next part.

        The slot is taken before the bytes are copied out, so at most ``in_flight`` part
        copies exist besides the buffer.
        """
        upload_id = self._start()
        if not self._slots.acquire(timeout=self._stall):
            raise self._stalled_error("uploading")
        try:
            self._raise_failed_part()
        except BaseException:
            self._slots.release()
            raise
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            self._slots.release()
            raise StorageError(f"{self._s3.uri(self._key)} needs more than {MAX_PARTS} parts; "
                               "S3 objects are limited to 5 TiB")
        chunk = self._take(size)
        future = run_in_thread(lambda: self._upload_part(upload_id, number, chunk),
                               f"s3-part-{number}")
        future.add_done_callback(lambda _f: self._slots.release())
        self._parts.append(future)

    def _upload_part(self, upload_id: str, number: int, chunk: bytes) -> dict[str, Any]:
        resp = self._s3.call(f"uploading part {number} of", self._key, "upload_part",
                             Key=self._key, UploadId=upload_id, PartNumber=number, Body=chunk)
        return {"PartNumber": number, "ETag": resp["ETag"]}

    def _raise_failed_part(self) -> None:
        for future in self._parts:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def _wait_parts(self) -> list[dict[str, Any]]:
        done = []
        for future in self._parts:
            try:
                done.append(future.result(timeout=self._stall))
            except FutureTimeout:
                raise self._stalled_error("finishing the upload of") from None
        return done

    def _commit(self) -> None:
        if self._upload_id is None:
            self._s3.put_object(self._key, bytes(self._buffer))
            return
        try:
            if self._buffer:
                self._submit(len(self._buffer))
            parts = self._wait_parts()
            self._s3.call("completing the upload of", self._key, "complete_multipart_upload",
                          Key=self._key, UploadId=self._upload_id,
                          MultipartUpload={"Parts": parts})
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        """Abort the multipart upload, trying again while the endpoint may be briefly gone,
        for at most ``min(ABORT_SECONDS, stall_seconds)`` (one try after a stall); what is
        left is aborted by weekly cleanup."""
        self._buffer.clear()
        for future in self._parts:
            future.cancel()
        if self._upload_id is None:
            return
        delays = (0.0,) if self._stalled else ABORT_RETRY_DELAYS
        attempt = run_in_thread(lambda: self._abort_with_retries(delays), "s3-abort")
        try:
            attempt.result(timeout=min(ABORT_SECONDS, self._stall))
            return
        except FutureTimeout:
            log.warning("aborting the multipart upload of %s got no answer",
                        self._s3.uri(self._key))
        except StorageError as exc:
            log.warning("%s", exc)
        log.error("multipart upload %s of %s is left behind; weekly cleanup will abort it",
                  self._upload_id, self._s3.uri(self._key))

    def _abort_with_retries(self, delays: tuple[float, ...]) -> None:
        for number, delay in enumerate(delays, start=1):
            try:
                self._abort_once()
                return
            except StorageError as exc:  # the endpoint may be briefly gone: try again
                if number == len(delays):
                    raise
                log.warning("try %d: %s", number, exc)
                time.sleep(delay)

    def _abort_once(self) -> None:
        self._s3.call("aborting the multipart upload of", self._key, "abort_multipart_upload",
                      Key=self._key, UploadId=self._upload_id)
        log.info("aborted multipart upload of %s", self._s3.uri(self._key))
