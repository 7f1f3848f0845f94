"""Backup storage in any S3-compatible service, through a boto3 client."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, BinaryIO

from amprenta_backup.core.constants import PART_SIZE, PARTS_IN_FLIGHT
from amprenta_backup.core.errors import StorageError
from amprenta_backup.core.models import ObjectInfo
from amprenta_backup.core.storage.base import IncompleteUpload, ObjectWriter, Storage

log = logging.getLogger(__name__)

ABORT_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 0.0)


def _describe(exc: Exception) -> str:
    """A short, secret-free description of a boto3/botocore error."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}".strip(": ")
    return f"{type(exc).__name__}: {exc}"


class _MultipartWriter(ObjectWriter):
    """Uploads fixed-size parts as they fill, at most ``in_flight`` at once.

    Memory stays near ``part_size * (in_flight + 1)`` whatever the object's size. An object
    smaller than one part is sent with a single ``PutObject``.
    """

    def __init__(self, storage: S3Storage, key: str, part_size: int, in_flight: int) -> None:
        super().__init__()
        self._s3 = storage
        self._key = key
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._in_flight = in_flight
        self._slots = threading.BoundedSemaphore(in_flight)
        self._pool: ThreadPoolExecutor | None = None

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            self._submit(self._part_size)
        return len(data)

    def _take(self, size: int) -> bytes:
        """Move the first ``size`` buffered bytes out, copying them once."""
        with memoryview(self._buffer) as view:
            chunk = bytes(view[:size])
        del self._buffer[:size]
        return chunk

    def _start(self) -> str:
        if self._upload_id is None:
            try:
                resp = self._s3.client.create_multipart_upload(
                    Bucket=self._s3.bucket, Key=self._key, **self._s3.encryption_args
                )
            except Exception as exc:
                raise self._s3.error("starting the upload of", self._key, exc) from exc
            self._upload_id = resp["UploadId"]
            self._pool = ThreadPoolExecutor(self._in_flight, thread_name_prefix="s3-part")
        return self._upload_id

    def _submit(self, size: int) -> None:
        """Upload the first ``size`` buffered bytes as the next part.

        The slot is taken before the bytes are copied out, so at most ``in_flight`` part
        copies exist besides the buffer.
        """
        upload_id = self._start()
        self._slots.acquire()
        try:
            self._raise_failed_part()
        except BaseException:
            self._slots.release()
            raise
        chunk = self._take(size)
        number = len(self._parts) + 1
        assert self._pool is not None
        future = self._pool.submit(self._upload_part, upload_id, number, chunk)
        future.add_done_callback(lambda _f: self._slots.release())
        self._parts.append(future)

    def _upload_part(self, upload_id: str, number: int, chunk: bytes) -> dict[str, Any]:
        try:
            resp = self._s3.client.upload_part(
                Bucket=self._s3.bucket, Key=self._key, UploadId=upload_id,
                PartNumber=number, Body=chunk,
            )
        except Exception as exc:
            raise self._s3.error(f"uploading part {number} of", self._key, exc) from exc
        return {"PartNumber": number, "ETag": resp["ETag"]}

    def _raise_failed_part(self) -> None:
        for future in self._parts:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def _commit(self) -> None:
        if self._upload_id is None:
            self._s3.put_object(self._key, bytes(self._buffer))
            return
        try:
            if self._buffer:
                self._submit(len(self._buffer))
            parts = [future.result() for future in self._parts]
            self._s3.client.complete_multipart_upload(
                Bucket=self._s3.bucket, Key=self._key, UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        except StorageError:
            self._abort()
            raise
        except Exception as exc:
            self._abort()
            raise self._s3.error("completing the upload of", self._key, exc) from exc
        finally:
            self._shutdown()

    def _abort(self) -> None:
        self._buffer.clear()
        self._shutdown()
        if self._upload_id is None:
            return
        uri = self._s3.uri(self._key)
        for attempt, delay in enumerate(ABORT_RETRY_DELAYS, start=1):
            try:
                self._s3.client.abort_multipart_upload(
                    Bucket=self._s3.bucket, Key=self._key, UploadId=self._upload_id
                )
                log.info("aborted multipart upload of %s", uri)
                return
            except Exception as exc:  # the endpoint may be briefly gone: try again
                log.warning("aborting the multipart upload of %s failed (try %d: %s)", uri,
                            attempt, _describe(exc))
                time.sleep(delay)
        log.error("multipart upload %s of %s is left behind; weekly cleanup will abort it",
                  self._upload_id, uri)

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class _BodyReader(io.RawIOBase):
    """A raw stream over a boto3 ``StreamingBody``."""

    def __init__(self, body: Any, describe: str) -> None:
        self._body = body
        self._describe = describe

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:
            raise StorageError(f"reading {self._describe} failed: {_describe(exc)}") from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class S3Storage(Storage):
    """Backups in a bucket of an S3-compatible service.

    :param client: a boto3 S3 client (its endpoint decides which service is used)
    :param bucket: the bucket name
    :param sse: ``none``, ``AES256`` (SSE-S3) or ``aws:kms`` (SSE-KMS)
    :param kms_key_id: the KMS key for ``aws:kms``
    :param part_size: multipart part size in bytes
    :param in_flight: parts uploaded at the same time
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        sse: str = "none",
        kms_key_id: str | None = None,
        part_size: int = PART_SIZE,
        in_flight: int = PARTS_IN_FLIGHT,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.part_size = part_size
        self.in_flight = in_flight
        self.encryption_args: dict[str, str] = {}
        if sse != "none":
            self.encryption_args["ServerSideEncryption"] = sse
        if sse == "aws:kms" and kms_key_id:
            self.encryption_args["SSEKMSKeyId"] = kms_key_id

    @property
    def endpoint(self) -> str:
        return str(getattr(getattr(self.client, "meta", None), "endpoint_url", "") or "AWS")

    def error(self, action: str, key: str, exc: Exception) -> StorageError:
        """A StorageError that says what was done, where, and what to check."""
        code = _describe(exc)
        hint = "check the endpoint, the credentials and the bucket's permissions"
        if "NoSuchBucket" in code:
            hint = (f"create bucket {self.bucket!r} or fix BACKUP_S3_BUCKET")
        elif "AccessDenied" in code or "InvalidAccessKeyId" in code or "Signature" in code:
            hint = "check the credentials of the AWS connection (BACKUP_AWS_CONN_ID)"
        return StorageError(f"{action} {self.uri(key)} at {self.endpoint} failed ({code}); {hint}")

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def open_writer(self, key: str) -> ObjectWriter:
        return _MultipartWriter(self, key, self.part_size, self.in_flight)

    def put_object(self, key: str, data: bytes) -> None:
        """Store ``data`` with one PutObject call."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **self.encryption_args)
        except Exception as exc:
            raise self.error("writing", key, exc) from exc

    def open_reader(self, key: str) -> BinaryIO:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as exc:
            if "NoSuchKey" in _describe(exc):
                raise StorageError(f"object not found: {self.uri(key)}") from exc
            raise self.error("reading", key, exc) from exc
        return io.BufferedReader(_BodyReader(body, self.uri(key)), buffer_size=1024 * 1024)

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], int(item["Size"]), item["LastModified"])
        except StorageError:
            raise
        except Exception as exc:
            raise self.error("listing", prefix, exc) from exc

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            try:
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except Exception as exc:
                raise self.error("deleting", batch[0]["Key"], exc) from exc
            failed = [e.get("Key", "?") for e in resp.get("Errors", [])]
            if failed:
                raise StorageError(f"could not delete {len(failed)} objects: {failed[:5]}")

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            code = _describe(exc)
            if code.startswith(("404", "NoSuchKey", "NotFound")):
                return False
            raise self.error("checking", key, exc) from exc
        return True

    def retention_until(self, key: str) -> datetime | None:
        """The Object Lock retain-until date of ``key`` (a legal hold counts as forever)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _describe(exc).startswith(("404", "NoSuchKey", "NotFound")):
                return None
            raise self.error("reading the Object Lock of", key, exc) from exc
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            return datetime.max.replace(tzinfo=UTC)
        until = head.get("ObjectLockRetainUntilDate")
        return until if isinstance(until, datetime) else None

    def list_incomplete_uploads(self, prefix: str = "") -> list[IncompleteUpload]:
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix)
            return [IncompleteUpload(item["Key"], item["UploadId"], item["Initiated"])
                    for page in pages for item in page.get("Uploads", [])]
        except Exception as exc:
            raise self.error("listing unfinished uploads under", prefix, exc) from exc

    def abort_upload(self, upload: IncompleteUpload) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload.key,
                                               UploadId=upload.upload_id)
        except Exception as exc:
            if "NoSuchUpload" not in _describe(exc):
                raise self.error("aborting the unfinished upload of", upload.key, exc) from exc

    def check_ready(self) -> None:
        """Raise a StorageError that says how to fix it unless the bucket can be reached."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            code = _describe(exc)
            if code.startswith(("404", "NoSuchBucket", "NotFound")):
                raise StorageError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}; create it or fix "
                    "BACKUP_S3_BUCKET"
                ) from exc
            raise self.error("reaching bucket", "", exc) from exc
