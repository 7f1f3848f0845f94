"""BackupConfig: the spec's ``BACKUP_*`` environment variables, parsed and validated."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from amprenta_backup.core.constants import (
    DEFAULT_BUCKET,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_LOCAL_PATH,
    DEFAULT_PREFIX,
    DEFAULT_RETENTION_DAYS,
    MIN_RETENTION_DAYS,
)
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.layout import CONN_ID

_CONN_ID = CONN_ID
_DB_NAME = re.compile(r"^[^\x00/\\]{1,63}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
STORAGE_TYPES = ("local", "s3")
SSE_MODES = ("none", "AES256", "aws:kms")


@dataclass(frozen=True)
class BackupTarget:
    """One database to back up: an Airflow Postgres connection id, optionally another database.

    :param conn_id: id of the Postgres connection that reaches the server
    :param database: database to dump; ``None`` means the connection's own database
    """

    conn_id: str
    database: str | None = None

    def __post_init__(self) -> None:
        if not _CONN_ID.match(self.conn_id):
            raise ConfigError(
                f"BACKUP_TARGETS: {self.conn_id!r} is not a valid connection id; use letters, "
                "digits, '_', '.', '-' (for example 'pg_main' or 'pg_main:analytics')"
            )
        if self.database is not None and not _DB_NAME.match(self.database):
            raise ConfigError(
                f"BACKUP_TARGETS: database name {self.database!r} is not valid; it must be 1-63 "
                "characters without '/', '\\' or NUL"
            )

    @property
    def name(self) -> str:
        """A storage-safe name: ``conn_id`` or ``conn_id.database``."""
        if not self.database:
            return self.conn_id
        safe_db = re.sub(r"[^A-Za-z0-9_.-]", "_", self.database)
        return f"{self.conn_id}.{safe_db}"

    @classmethod
    def parse(cls, text: str) -> BackupTarget:
        """Parse ``conn_id`` or ``conn_id:database``."""
        conn_id, _, database = text.strip().partition(":")
        return cls(conn_id=conn_id, database=database or None)

    def to_text(self) -> str:
        """The inverse of :meth:`parse`."""
        return f"{self.conn_id}:{self.database}" if self.database else self.conn_id


@dataclass(frozen=True)
class GFSSpec:
    """Grandfather-father-son counts: keep the newest backup of D days, W weeks, M months.

    :param daily: days to keep one backup of
    :param weekly: ISO weeks to keep one backup of
    :param monthly: months to keep one backup of
    """

    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    @classmethod
    def parse(cls, text: str) -> GFSSpec | None:
        """Parse ``BACKUP_GFS`` such as ``7d,4w,12m`` (any subset, any order); empty is None."""
        counts: dict[str, int] = {}
        for item in (p.strip().lower() for p in text.split(",") if p.strip()):
            match = re.fullmatch(r"(\d{1,4})([dwm])", item)
            if not match or match.group(2) in counts:
                raise ConfigError(
                    f"BACKUP_GFS={text!r} is not valid at {item!r}: give each of d (days), w "
                    "(weeks), m (months) at most once with a count, e.g. BACKUP_GFS=7d,4w,12m"
                )
            counts[match.group(2)] = int(match.group(1))
        if not any(counts.values()):
            return None
        return cls(daily=counts.get("d", 0), weekly=counts.get("w", 0),
                   monthly=counts.get("m", 0))


def parse_targets(text: str) -> tuple[BackupTarget, ...]:
    """Parse a comma-separated ``BACKUP_TARGETS`` value; duplicates are an error."""
    items = [part for part in (p.strip() for p in text.split(",")) if part]
    targets = tuple(BackupTarget.parse(item) for item in items)
    names = [t.name for t in targets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"BACKUP_TARGETS lists {', '.join(dupes)} more than once; list each once")
    return targets


@dataclass(frozen=True)
class BackupConfig:
    """Validated backup settings; build one with :meth:`from_env`.

    :param storage_type: ``local`` or ``s3`` (BACKUP_STORAGE_TYPE)
    :param s3_bucket: bucket for ``s3`` storage (BACKUP_S3_BUCKET)
    :param s3_prefix: key prefix under which everything is stored (BACKUP_S3_PREFIX)
    :param s3_region: region of the bucket (BACKUP_S3_REGION)
    :param s3_endpoint_url: endpoint of an S3-compatible service (BACKUP_S3_ENDPOINT_URL)
    :param s3_sse: server-side encryption: ``none``, ``AES256`` or ``aws:kms`` (BACKUP_S3_SSE)
    :param s3_kms_key_id: KMS key for ``aws:kms`` (BACKUP_S3_KMS_KEY_ID)
    :param s3_stall_seconds: an S3 call or upload that makes no progress this long fails
        (BACKUP_S3_STALL_SECONDS, 10-3600)
    :param local_path: root folder for ``local`` storage (BACKUP_LOCAL_PATH)
    :param retention_days: days to keep backups, at least 7 (BACKUP_RETENTION_DAYS)
    :param keep_last: also keep the newest N backups of each target, 0 = off (BACKUP_KEEP_LAST)
    :param gfs: also keep daily/weekly/monthly backups, ``7d,4w,12m`` (BACKUP_GFS)
    :param health_max_age_hours: warn when the newest backup is older (BACKUP_HEALTH_MAX_AGE_HOURS)
    :param compression_enabled: zstd-compress dumps (BACKUP_COMPRESSION_ENABLED)
    :param compression_level: zstd level 1-19 (BACKUP_COMPRESSION_LEVEL)
    :param compression_threads: zstd worker threads, 0 = single-threaded
        (BACKUP_COMPRESSION_THREADS)
    :param checksum_enabled: compute sha256 of stored bytes (BACKUP_CHECKSUM_ENABLED)
    :param targets: databases to back up (BACKUP_TARGETS, ``conn_id[:database],...``)
    :param catalog_conn_id: Postgres connection of the catalog (BACKUP_CATALOG_CONN_ID)
    :param aws_conn_id: AWS connection for ``s3`` storage (BACKUP_AWS_CONN_ID)
    :param health_check_enabled: run health checks (BACKUP_HEALTH_CHECK_ENABLED)
    :param reverify_days: read verified backups back again after this many days, 0 = never
        (BACKUP_REVERIFY_DAYS)
    :param notification_enabled: send admin alerts (BACKUP_NOTIFICATION_ENABLED)
    """

    storage_type: str = "local"
    s3_bucket: str = DEFAULT_BUCKET
    s3_prefix: str = DEFAULT_PREFIX
    s3_region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    s3_sse: str = "none"
    s3_kms_key_id: str | None = None
    s3_stall_seconds: int = 120
    local_path: str = DEFAULT_LOCAL_PATH
    retention_days: int = DEFAULT_RETENTION_DAYS
    keep_last: int = 0
    gfs: GFSSpec | None = None
    health_max_age_hours: int = 48
    compression_enabled: bool = True
    compression_level: int = DEFAULT_COMPRESSION_LEVEL
    compression_threads: int = 2
    checksum_enabled: bool = True
    targets: tuple[BackupTarget, ...] = field(default_factory=tuple)
    catalog_conn_id: str = "backup_catalog"
    aws_conn_id: str = "aws_default"
    health_check_enabled: bool = True
    reverify_days: int = 30
    notification_enabled: bool = True

    def __post_init__(self) -> None:
        if self.storage_type not in STORAGE_TYPES:
            raise ConfigError(
                f"BACKUP_STORAGE_TYPE={self.storage_type!r} is not supported; "
                "set it to 'local' or 's3'"
            )
        if self.storage_type == "s3" and not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                                                      self.s3_bucket):
            raise ConfigError(
                f"BACKUP_S3_BUCKET={self.s3_bucket!r} is not a valid bucket name; use 3-63 "
                "lower-case letters, digits, '.' or '-'"
            )
        if self.storage_type == "local" and not os.path.isabs(self.local_path):
            raise ConfigError(
                f"BACKUP_LOCAL_PATH={self.local_path!r} must be an absolute path, "
                "for example /var/backups/amprenta"
            )
        if self.retention_days < MIN_RETENTION_DAYS:
            raise ConfigError(
                f"BACKUP_RETENTION_DAYS={self.retention_days} is under the "
                f"{MIN_RETENTION_DAYS}-day safety floor; set it to {MIN_RETENTION_DAYS} or more"
            )
        if self.keep_last < 0:
            raise ConfigError(f"BACKUP_KEEP_LAST={self.keep_last} is negative; use 0 (off) or a "
                              "count such as 7")
        if self.health_max_age_hours < 1:
            raise ConfigError(f"BACKUP_HEALTH_MAX_AGE_HOURS={self.health_max_age_hours} must be "
                              "1 or more, e.g. 48")
        if self.s3_sse not in SSE_MODES:
            raise ConfigError(
                f"BACKUP_S3_SSE={self.s3_sse!r} is not supported; use one of {', '.join(SSE_MODES)}"
            )
        if self.s3_sse == "aws:kms" and not self.s3_kms_key_id:
            raise ConfigError("BACKUP_S3_SSE=aws:kms needs BACKUP_S3_KMS_KEY_ID (a KMS key id/ARN)")
        if not 10 <= self.s3_stall_seconds <= 3600:
            raise ConfigError(f"BACKUP_S3_STALL_SECONDS={self.s3_stall_seconds} is out of range; "
                              "use 10-3600 seconds, e.g. 120")
        if self.reverify_days < 0:
            raise ConfigError(f"BACKUP_REVERIFY_DAYS={self.reverify_days} is negative; use 0 "
                              "(never read verified backups again) or a number of days")
        if not 1 <= self.compression_level <= 19:
            raise ConfigError(
                f"BACKUP_COMPRESSION_LEVEL={self.compression_level} is out of range; use 1-19"
            )
        if not 0 <= self.compression_threads <= 64:
            raise ConfigError(
                f"BACKUP_COMPRESSION_THREADS={self.compression_threads} is out of range; use 0-64"
            )
        for name, value in (("BACKUP_CATALOG_CONN_ID", self.catalog_conn_id),
                            ("BACKUP_AWS_CONN_ID", self.aws_conn_id)):
            if not _CONN_ID.match(value):
                raise ConfigError(f"{name}={value!r} is not a valid connection id")

    @property
    def prefix(self) -> str:
        """The key prefix without leading or trailing slashes."""
        return self.s3_prefix.strip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BackupConfig:
        """Read the ``BACKUP_*`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        reader = EnvReader(env)
        return cls(
            storage_type=reader.text("BACKUP_STORAGE_TYPE", "local").lower(),
            s3_bucket=reader.text("BACKUP_S3_BUCKET", DEFAULT_BUCKET),
            s3_prefix=reader.text("BACKUP_S3_PREFIX", DEFAULT_PREFIX),
            s3_region=reader.text("BACKUP_S3_REGION", "us-east-1"),
            s3_endpoint_url=reader.text("BACKUP_S3_ENDPOINT_URL", "") or None,
            s3_sse=reader.text("BACKUP_S3_SSE", "none"),
            s3_kms_key_id=reader.text("BACKUP_S3_KMS_KEY_ID", "") or None,
            s3_stall_seconds=reader.integer("BACKUP_S3_STALL_SECONDS", 120),
            local_path=reader.text("BACKUP_LOCAL_PATH", DEFAULT_LOCAL_PATH),
            retention_days=reader.integer("BACKUP_RETENTION_DAYS", DEFAULT_RETENTION_DAYS),
            keep_last=reader.integer("BACKUP_KEEP_LAST", 0),
            gfs=GFSSpec.parse(reader.text("BACKUP_GFS", "")),
            health_max_age_hours=reader.integer("BACKUP_HEALTH_MAX_AGE_HOURS", 48),
            compression_enabled=reader.flag("BACKUP_COMPRESSION_ENABLED", True),
            compression_level=reader.integer("BACKUP_COMPRESSION_LEVEL",
                                             DEFAULT_COMPRESSION_LEVEL),
            compression_threads=reader.integer("BACKUP_COMPRESSION_THREADS", 2),
            checksum_enabled=reader.flag("BACKUP_CHECKSUM_ENABLED", True),
            targets=parse_targets(reader.text("BACKUP_TARGETS", "")),
            catalog_conn_id=reader.text("BACKUP_CATALOG_CONN_ID", "backup_catalog"),
            aws_conn_id=reader.text("BACKUP_AWS_CONN_ID", "aws_default"),
            health_check_enabled=reader.flag("BACKUP_HEALTH_CHECK_ENABLED", True),
            reverify_days=reader.integer("BACKUP_REVERIFY_DAYS", 30),
            notification_enabled=reader.flag("BACKUP_NOTIFICATION_ENABLED", True),
        )


class EnvReader:
    """Typed reads of environment variables with errors that name the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        return self._env.get(name, default).strip()

    def integer(self, name: str, default: int) -> int:
        raw = self._env.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            return int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number; set e.g. {name}={default}") \
                from None

    def flag(self, name: str, default: bool) -> bool:
        raw = self._env.get(name)
        if raw is None or not raw.strip():
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(f"{name}={raw!r} is not a boolean; use true or false")
