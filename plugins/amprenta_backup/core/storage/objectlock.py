"""S3 Object Lock (WORM): the retain-until date every object is written with, the preflight
check that the bucket has Object Lock enabled, and deletes of every version of a key.

A bucket with Object Lock is versioned: a delete without a version id only hides the object
behind a delete marker (nothing is freed, nothing is refused). So with a lock configured a
delete removes each version, which S3 refuses while its retain-until date is ahead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from amprenta_backup.core.errors import ObjectLocked, StorageError, StorageNotReady

if TYPE_CHECKING:
    from amprenta_backup.core.storage.s3 import S3Storage

MODES = ("governance", "compliance")
LOCK_REFUSED = "object lock"  # in S3's (and moto's) message for a delete of a locked version


@dataclass(frozen=True)
class ObjectLock:
    """Write every object with an Object Lock retain-until date ``period`` from now.

    :param mode: ``governance`` (users with s3:BypassGovernanceRetention may still delete) or
        ``compliance`` (nobody can delete before the date, not even the root account)
    :param period: how long each object stays locked (BACKUP_OBJECT_LOCK_DAYS)
    :param setting: the variable that asked for the lock, for messages
        (``BACKUP_COPY_OBJECT_LOCK_MODE`` for the second copy)
    """

    mode: str
    period: timedelta
    setting: str = "BACKUP_OBJECT_LOCK_MODE"

    def __post_init__(self) -> None:
        if self.mode.lower() not in MODES:
            raise ValueError(f"Object Lock mode {self.mode!r}: use governance or compliance")

    def write_args(self, now: datetime | None = None) -> dict[str, Any]:
        """``ObjectLockMode`` and ``ObjectLockRetainUntilDate`` for PutObject and
        CreateMultipartUpload (S3 compares the date with its own clock)."""
        start = now or datetime.now(UTC)
        return {"ObjectLockMode": self.mode.upper(),
                "ObjectLockRetainUntilDate": start + self.period}

    def describe(self) -> str:
        days = self.period.total_seconds() / 86400
        return f"{self.mode} mode, {days:g} days"


def enable_hint(bucket: str, setting: str = "BACKUP_OBJECT_LOCK_MODE") -> str:
    """How to give ``bucket`` Object Lock (or stop asking for it with ``setting``)."""
    return (f"enable Object Lock on bucket {bucket!r} (`aws s3api put-bucket-versioning --bucket "
            f"{bucket} --versioning-configuration Status=Enabled` then `aws s3api "
            f"put-object-lock-configuration --bucket {bucket} --object-lock-configuration "
            "ObjectLockEnabled=Enabled`, or create a new bucket with "
            f"--object-lock-enabled-for-bucket), or unset {setting}")


def check_lock_enabled(storage: S3Storage, lock: ObjectLock) -> None:
    """Raise :class:`StorageNotReady` naming the fix unless the bucket has Object Lock on."""
    try:
        resp = storage.client.get_object_lock_configuration(Bucket=storage.bucket)
        enabled = resp.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
    except Exception as exc:
        if "ObjectLockConfigurationNotFound" not in str(exc):
            raise storage.error("reading the Object Lock configuration of", "", exc) from exc
        enabled = False
    if not enabled:
        raise StorageNotReady(
            f"{lock.setting}={lock.mode} but bucket {storage.bucket!r} at "
            f"{storage.endpoint} has no Object Lock enabled, so backups would not be immutable; "
            + enable_hint(storage.bucket, lock.setting))


def versions(storage: S3Storage, keys: list[str]) -> Iterator[dict[str, str]]:
    """``{"Key", "VersionId"}`` of every version and delete marker of ``keys``."""
    wanted = set(keys)
    pages = storage.client.get_paginator("list_object_versions").paginate(
        Bucket=storage.bucket, Prefix=os.path.commonprefix(keys))
    for page in pages:
        for item in (*page.get("Versions", []), *page.get("DeleteMarkers", [])):
            if item["Key"] in wanted:
                yield {"Key": item["Key"], "VersionId": item["VersionId"]}


def delete_versions(storage: S3Storage, keys: list[str]) -> None:
    """Delete every version of ``keys``; raise :class:`ObjectLocked` for the versions whose
    retain-until date is ahead (the others are gone)."""
    try:
        targets = list(versions(storage, keys)) if keys else []
    except Exception as exc:
        raise storage.error("listing the versions under", os.path.commonprefix(keys), exc) \
            from exc
    locked: list[str] = []
    other: list[str] = []
    for start in range(0, len(targets), 1000):
        batch = targets[start:start + 1000]
        resp = storage.call("deleting", batch[0]["Key"], "delete_objects",
                            Delete={"Objects": batch, "Quiet": True})
        for err in resp.get("Errors", []):
            refused = LOCK_REFUSED in str(err.get("Message", "")).lower()
            (locked if refused else other).append(str(err.get("Key", "?")))
    if other:
        raise StorageError(f"could not delete {len(other)} object versions: {other[:5]}")
    if locked:
        names = sorted(set(locked))
        plural = "s" if len(names) != 1 else ""
        raise ObjectLocked(f"S3 Object Lock keeps {len(names)} object{plural} until their "
                           f"retain-until date: {', '.join(storage.uri(k) for k in names[:3])}"
                           f"{' ...' if len(names) > 3 else ''}", names)
