"""Backup storage in any S3-compatible service, through a boto3 client."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from amprenta_backup.core.constants import PART_SIZE, PARTS_IN_FLIGHT
from amprenta_backup.core.errors import (
    ObjectLocked,
    ObjectMissing,
    StorageError,
    StorageNotReady,
)
from amprenta_backup.core.models import ObjectInfo
from amprenta_backup.core.storage.base import IncompleteUpload, ObjectWriter, Storage
from amprenta_backup.core.storage.multipart import GROWTH_EVERY, MultipartWriter, PartSizer
from amprenta_backup.core.storage.objectlock import (
    ObjectLock,
    check_lock_enabled,
    delete_versions,
)

log = logging.getLogger(__name__)

DEFAULT_STALL_SECONDS = 120
CONNECT_TIMEOUT = 10
MAX_ATTEMPTS = 4  # calls in all, the first included


def client_config(stall_seconds: float = DEFAULT_STALL_SECONDS, base: Any = None,
                  endpoint_url: str | None = None, object_lock: bool = False) -> Any:
    """botocore ``Config`` for the production client: connect and read timeouts and standard
    retries, sized so that one call on a frozen endpoint gives up within ``stall_seconds``.

    On a plain ``http://`` endpoint SigV4 already hashes every body (sha256, signed), so the
    optional CRC of each part and of each download is not computed again
    (``when_required``); over https the defaults stay (one CRC in a trailer, no sha256).
    With Object Lock the CRC stays: S3 refuses a locked write without a checksum header.

    :param stall_seconds: BACKUP_S3_STALL_SECONDS
    :param base: a Config to merge into (e.g. the Airflow connection's ``config_kwargs``)
    :param endpoint_url: BACKUP_S3_ENDPOINT_URL, if set
    :param object_lock: BACKUP_OBJECT_LOCK_MODE is set
    """
    from botocore.config import Config

    read_timeout = max(1, int(stall_seconds // MAX_ATTEMPTS))
    options: dict[str, Any] = {}
    if endpoint_url and endpoint_url.lower().startswith("http://") and not object_lock:
        options = {"request_checksum_calculation": "when_required",
                   "response_checksum_validation": "when_required"}
    ours = Config(connect_timeout=min(CONNECT_TIMEOUT, read_timeout), read_timeout=read_timeout,
                  retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                  tcp_keepalive=True, **options)
    return base.merge(ours) if base is not None else ours


def new_client(config: Any, **kwargs: Any) -> Any:
    """An S3 client made by botocore itself (``kwargs``: region_name, endpoint_url,
    credentials). ``boto3.client`` makes the same client and adds its transfer manager
    (``s3transfer``: 80-130 ms of imports per process) that this storage never uses."""
    import botocore.session

    return botocore.session.get_session().create_client("s3", config=config, **kwargs)


class LazyClient:
    """An S3 client made on first use, once, in whichever thread asks first. botocore's
    imports and the client cost 0.1-0.2 s of Python, paid only by what reaches S3.

    :param make: makes the client (e.g. ``lambda: new_client(config, **kwargs)``)
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._client: Any = None

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client


def _describe(exc: Exception) -> str:
    """A short, secret-free description of a boto3/botocore error."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}".strip(": ")
    return f"{type(exc).__name__}: {exc}"


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

    :param client: a boto3 S3 client (its endpoint decides which service is used), or a
        :class:`LazyClient` that makes it on first use
    :param bucket: the bucket name
    :param sse: ``none``, ``AES256`` (SSE-S3) or ``aws:kms`` (SSE-KMS)
    :param kms_key_id: the KMS key for ``aws:kms``
    :param part_size: the smallest first multipart part size in bytes (parts then grow)
    :param in_flight: parts uploaded at the same time
    :param stall_seconds: an upload with no part finished for this long fails
    :param growth_every: parts between two doublings of the part size
    :param object_lock: write every object with this Object Lock retain-until date (the
        bucket must have Object Lock enabled); deletes then remove every version
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        sse: str = "none",
        kms_key_id: str | None = None,
        part_size: int = PART_SIZE,
        in_flight: int = PARTS_IN_FLIGHT,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
        growth_every: int = GROWTH_EVERY,
        object_lock: ObjectLock | None = None,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.part_size = part_size
        self.in_flight = in_flight
        self.stall_seconds = stall_seconds
        self.growth_every = growth_every
        self.object_lock = object_lock
        self.encryption_args: dict[str, str] = {}
        if sse != "none":
            self.encryption_args["ServerSideEncryption"] = sse
        if sse == "aws:kms" and kms_key_id:
            self.encryption_args["SSEKMSKeyId"] = kms_key_id

    @property
    def client(self) -> Any:
        client = self._client
        return client.get() if isinstance(client, LazyClient) else client

    @client.setter
    def client(self, client: Any) -> None:
        self._client = client

    def write_args(self, locked: bool = True) -> dict[str, Any]:
        """Arguments of every PutObject and CreateMultipartUpload: server-side encryption and,
        when configured (and ``locked``), the Object Lock mode and retain-until date."""
        lock = self.object_lock.write_args() if self.object_lock and locked else {}
        return {**self.encryption_args, **lock}

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

    def call(self, action: str, key: str, operation: str, **kwargs: Any) -> Any:
        """``client.<operation>(Bucket=..., **kwargs)``; errors become a StorageError that
        says ``action`` on which key."""
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            raise self.error(action, key, exc) from exc

    def open_writer(self, key: str, expected_size: int | None = None) -> ObjectWriter:
        sizer = PartSizer(self.part_size, self.growth_every, expected_size)
        return MultipartWriter(self, key, sizer, self.in_flight, self.stall_seconds)

    def put_object(self, key: str, data: bytes, locked: bool = True) -> None:
        """Store ``data`` with one PutObject call (``locked=False``: without Object Lock)."""
        self.call("writing", key, "put_object", Key=key, Body=data, **self.write_args(locked))

    def open_reader(self, key: str) -> BinaryIO:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as exc:
            if "NoSuchKey" in _describe(exc):
                raise ObjectMissing(f"object not found: {self.uri(key)}") from exc
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
        if self.object_lock is not None:
            delete_versions(self, keys)
            return
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
                raise StorageNotReady(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}; create it or fix "
                    "BACKUP_S3_BUCKET"
                ) from exc
            raise self.error("reaching bucket", "", exc) from exc
        if self.object_lock is not None:
            check_lock_enabled(self, self.object_lock)

    def check_writable(self, prefix: str = "") -> None:
        """Write and delete a probe object, without Object Lock (it would stay locked)."""
        probe = "/".join(p for p in (prefix.strip("/"), ".amprenta-probe") if p)
        self.put_object(probe, b"ok", locked=False)
        try:
            self.delete([probe])
        except ObjectLocked:  # the bucket's default retention locked it: writable all the same
            log.warning("the bucket's default Object Lock retention keeps the probe %s",
                        self.uri(probe))
