"""Settings of backups, storage, alerts, tasks, drills and client tools (declared once)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator

from amprenta_backup.core.constants import (
    DEFAULT_BUCKET,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_DUMP_MIN_TABLE_MB,
    DEFAULT_LOCAL_PATH,
    DEFAULT_PREFIX,
    DEFAULT_RETENTION_DAYS,
    HEARTBEAT_HELP,
    MIN_RETENTION_DAYS,
)
from amprenta_backup.core.drill.assertions import Assertion, load_assertions
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.identifiers import check_conn_id
from amprenta_backup.core.pgtools import split_dirs
from amprenta_backup.core.settings.base import (
    BackupTarget,
    GFSSpec,
    Settings,
    comma_list,
    lower,
    parse_targets,
    var,
)
from amprenta_backup.core.settings.encryption import EncryptionSettings

STORAGE_TYPES = ("local", "s3")
SSE_MODES = ("none", "AES256", "aws:kms")
CHANNELS = ("slack", "email", "table")
LATEST, RANDOM = "latest", "random"
DEFAULT_RTO_SECONDS = 4 * 3600.0  # the spec's objective for a full restore
_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
Lower = Annotated[str, BeforeValidator(lower)]
ConnId = Annotated[str, BeforeValidator(lambda v: check_conn_id(v, ""))]
Items = Annotated[tuple[str, ...], BeforeValidator(comma_list)]


class StorageConfig(Settings):
    """Where backups (and WAL) are stored; also written into ``amprenta-wal``'s settings file."""

    group: ClassVar[str] = "Storage"

    storage_type: Annotated[Literal["local", "s3"], BeforeValidator(lower)] = var(
        "BACKUP_STORAGE_TYPE", "local", "`local` or `s3`")
    local_path: str = var("BACKUP_LOCAL_PATH", DEFAULT_LOCAL_PATH,
                          "Root folder for `local` storage (absolute path)")
    s3_bucket: str = var("BACKUP_S3_BUCKET", DEFAULT_BUCKET, "Bucket for `s3` storage")
    s3_prefix: str = var("BACKUP_S3_PREFIX", DEFAULT_PREFIX, "Key prefix for everything stored")
    s3_region: str = var("BACKUP_S3_REGION", "us-east-1", "Region of the bucket")
    s3_endpoint_url: str | None = var(
        "BACKUP_S3_ENDPOINT_URL", None, "S3-compatible endpoint; usually set as "
        "`endpoint_url` in the aws connection's extra instead")
    s3_sse: Literal["none", "AES256", "aws:kms"] = var(
        "BACKUP_S3_SSE", "none", "Server-side encryption: `none`, `AES256` or `aws:kms`")
    s3_kms_key_id: str | None = var("BACKUP_S3_KMS_KEY_ID", None,
                                    "KMS key id/ARN, required with `aws:kms`")
    s3_stall_seconds: int = var(
        "BACKUP_S3_STALL_SECONDS", 120, "an S3 call or upload that makes no progress this long "
        "fails (timeouts and retries are sized from it)", ge=10, le=3600, unit="seconds")
    aws_conn_id: ConnId = var("BACKUP_AWS_CONN_ID", "aws_default",
                              "Airflow `aws` connection for `s3` storage")
    object_lock_mode: Annotated[Literal["governance", "compliance"] | None,
                                BeforeValidator(lambda v: lower(v) or None)] = var(
        "BACKUP_OBJECT_LOCK_MODE", None, "S3 Object Lock on every object written (dumps, "
        "globals, manifests, WAL, base backups): `governance` or `compliance`; the bucket must "
        "have Object Lock enabled (see Immutable backups)", shown="(off)")
    object_lock_days: int = var(
        "BACKUP_OBJECT_LOCK_DAYS", 30, "Days each object stays locked from when it is written "
        "(retention deletes it only after that)", ge=1, le=36500)

    @model_validator(mode="after")
    def _check(self) -> StorageConfig:
        name = type(self).names()  # the copy storage declares the same fields as BACKUP_COPY_*
        if self.storage_type == "s3" and not re.match(_BUCKET, self.s3_bucket):
            raise ConfigError(f"{name['s3_bucket']}={self.s3_bucket!r} is not a valid bucket "
                              "name; use 3-63 lower-case letters, digits, '.' or '-'")
        if self.storage_type == "local" and not os.path.isabs(self.local_path):
            raise ConfigError(f"{name['local_path']}={self.local_path!r} must be an absolute "
                              "path, for example /var/backups/amprenta")
        if self.object_lock_mode is not None:
            self._check_lock()
        if self.s3_sse == "aws:kms" and not self.s3_kms_key_id:
            raise ConfigError(f"{name['s3_sse']}=aws:kms needs {name['s3_kms_key_id']} (a KMS "
                              "key id/ARN)")
        return self

    def _check_lock(self) -> None:
        name = type(self).names()
        if self.storage_type != "s3":
            raise ConfigError(
                f"{name['object_lock_mode']}={self.object_lock_mode} needs "
                f"{name['storage_type']}=s3: {self.storage_type} storage has no Object Lock, so "
                "its backups could not be made immutable; use an S3 bucket with Object Lock "
                f"enabled, or unset {name['object_lock_mode']}")

    @property
    def prefix(self) -> str:
        """The key prefix without leading or trailing slashes."""
        return self.s3_prefix.strip("/")


class BackupConfig(Settings):
    """What to back up and how: targets, catalog, retention, compression, health.

    :param storage: where backups are stored (the ``BACKUP_STORAGE_TYPE``/``BACKUP_S3_*``
        variables, read with the rest by :meth:`from_env`)
    :param encryption: client-side encryption (``BACKUP_ENCRYPTION*``)
    """

    group: ClassVar[str] = "Backups"
    nested: ClassVar[dict[str, type[Settings]]] = {"storage": StorageConfig,
                                                    "encryption": EncryptionSettings}

    targets: Annotated[tuple[BackupTarget, ...], BeforeValidator(parse_targets)] = var(
        "BACKUP_TARGETS", (), "Comma-separated Airflow Postgres connection ids, each optionally "
        "`conn_id:database`", shown="(required)")
    catalog_conn_id: ConnId = var("BACKUP_CATALOG_CONN_ID", "backup_catalog",
                                  "Airflow Postgres connection of the catalog database")
    storage: StorageConfig = Field(default_factory=StorageConfig)
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    retention_days: int = var(
        "BACKUP_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, "Days to keep backups; at least `7`",
        ge=MIN_RETENTION_DAYS, le=36500,
        floor=f"{MIN_RETENTION_DAYS}-day safety floor")
    keep_last: int = var("BACKUP_KEEP_LAST", 0,
                         "Also keep the newest N backups of each target (0 = off)", ge=0, le=10000)
    gfs: Annotated[GFSSpec | None, BeforeValidator(GFSSpec.parse)] = var(
        "BACKUP_GFS", None, "Also keep daily/weekly/monthly backups, e.g. `7d,4w,12m`",
        shown="(off)")
    health_check_enabled: bool = var("BACKUP_HEALTH_CHECK_ENABLED", True,
                                     "Run the `daily_health` checks")
    health_max_age_hours: int = var(
        "BACKUP_HEALTH_MAX_AGE_HOURS", 48,
        "`daily_health` warns when the newest backup is older", ge=1, le=8760)
    reverify_days: int = var(
        "BACKUP_REVERIFY_DAYS", 30, "`weekly_verify` reads a verified backup back again once its "
        "last good verification is this old (0 = never), to catch bit rot", ge=0, le=3650)
    compression_enabled: bool = var("BACKUP_COMPRESSION_ENABLED", True, "zstd-compress dumps")
    compression_level: int = var(
        "BACKUP_COMPRESSION_LEVEL", DEFAULT_COMPRESSION_LEVEL, "zstd level, 1-19 (1 was faster "
        "*and* smaller than 3 on the benchmark data; see Benchmarks)", ge=1, le=19)
    compression_threads: int = var("BACKUP_COMPRESSION_THREADS", 2,
                                   "zstd worker threads, 0 = single-threaded", ge=0, le=64)
    dump_jobs: int = var(
        "BACKUP_DUMP_JOBS", 0, "Dump streams at once for a database with at least two sizeable "
        "tables, all on one snapshot (`1` = always one stream; `0` = two per CPU core, at most "
        "4); see Parallel backups", ge=0, le=32)
    dump_min_table_mb: int = var(
        "BACKUP_DUMP_MIN_TABLE_MB", DEFAULT_DUMP_MIN_TABLE_MB, "A table at least this big (MiB, "
        "`pg_table_size`) may get a dump stream of its own; with fewer than two, the dump is "
        "one stream", ge=1, le=1_048_576, unit="MiB")
    checksum_enabled: bool = var("BACKUP_CHECKSUM_ENABLED", True,
                                 "sha256 of the stored bytes, recorded in manifest and catalog")
    heartbeat_timeout_seconds: int = var("BACKUP_HEARTBEAT_TIMEOUT_SECONDS", 600, HEARTBEAT_HELP,
                                         ge=10, le=86400, unit="seconds")

    @property
    def prefix(self) -> str:
        """The key prefix without leading or trailing slashes."""
        return self.storage.prefix


class AlertSettings(Settings):
    """Where alerts go."""

    group: ClassVar[str] = "Alerts"

    enabled: bool = var("BACKUP_NOTIFICATION_ENABLED", True, "Send admin alerts at all")
    channels: Annotated[tuple[str, ...], BeforeValidator(lambda v: comma_list(lower(v)))] = var(
        "BACKUP_ALERT_CHANNELS", ("table",), "Comma list of `slack`, `email`, `table`",
        shown="`table`")
    slack_conn_id: str = var("BACKUP_SLACK_CONN_ID", "slack_default",
                             "Airflow `slackwebhook` connection for `slack`")
    smtp_conn_id: str = var("BACKUP_SMTP_CONN_ID", "smtp_default",
                            "Airflow `smtp` connection for `email`")
    email_to: Items = var("BACKUP_ALERT_EMAIL_TO", (), "Recipients for `email`, "
                          "comma-separated (required with `email`)")
    email_from: str | None = var("BACKUP_ALERT_EMAIL_FROM", None, "Sender for `email`",
                                 shown="(connection's)")
    deadline_hours: float = var(
        "BACKUP_DEADLINE_HOURS", 4.0, "Alert when `daily_backup` has not finished this long "
        "after it was queued (0 = off)", ge=0, le=168, shown="`4`")

    @model_validator(mode="after")
    def _check(self) -> AlertSettings:
        unknown = [c for c in self.channels if c not in CHANNELS]
        if unknown:
            raise ConfigError(f"BACKUP_ALERT_CHANNELS names {', '.join(unknown)}; use a comma "
                              f"list of {', '.join(CHANNELS)}, e.g. slack,table")
        if "email" in self.channels and not self.email_to:
            raise ConfigError("BACKUP_ALERT_CHANNELS has email but BACKUP_ALERT_EMAIL_TO is "
                              "empty; set it to the admins' addresses, e.g. ops@example.com")
        return self


class TaskSettings(Settings):
    """How the DAGs' tasks retry (read when DAG files are parsed)."""

    group: ClassVar[str] = "Tasks"

    retries: int = var(
        "BACKUP_TASK_RETRIES", 3, "Retries of the backup, verify and cleanup tasks, exponential "
        "backoff from `BACKUP_TASK_RETRY_DELAY_SECONDS` to 1 hour (read when DAG files are "
        "parsed; `restore`, `list_targets` and the health check never retry)", ge=0, le=20)
    retry_delay_seconds: int = var(
        "BACKUP_TASK_RETRY_DELAY_SECONDS", 300, "Wait before the first retry; doubled on each "
        "further retry, up to 1 hour", ge=1, le=3600, unit="seconds")
    server_queue: str | None = var(
        "BACKUP_SERVER_TASKS_QUEUE", None, "Queue of the tasks that start a PostgreSQL server on "
        "the worker (`pitr_restore`, `pitr_drill`, `dr_drill`: they need `pg_ctl`, `postgres`, "
        "`initdb`); serve it with workers that have the server tools (CeleryExecutor: "
        "`airflow celery worker --queues default,<queue>`)", shown="(Airflow's default queue)")
    approvers: Items = var(
        "BACKUP_APPROVERS", (), "Airflow user ids (comma-separated) who alone may answer the "
        "approvals of `restore` and `disaster_recovery` (read when DAG files are parsed); "
        "empty: any user allowed to run the DAG", shown="(any)")


class DrillSettings(Settings):
    """How restore drills run."""

    group: ClassVar[str] = "Restore drills"

    conn_id: ConnId | None = var(
        "BACKUP_DRILL_CONN_ID", None, "Postgres connection of the drill server (needs "
        "CREATEDB)", shown="(the target's connection)")
    rto_seconds: float = var("BACKUP_DRILL_RTO_SECONDS", DEFAULT_RTO_SECONDS,
                             "the objective for restore plus checks", gt=0, le=7 * 86400,
                             unit="seconds", shown="`14400`")
    forecast_days: int = var(
        "BACKUP_RTO_FORECAST_DAYS", 90, "daily_health warns when the restore time projected "
        "from the drills' history and the database's growth reaches BACKUP_DRILL_RTO_SECONDS "
        "within this many days (0: no forecast)", ge=0, le=3650)
    strategy: Annotated[Literal["latest", "random"], BeforeValidator(lower)] = var(
        "BACKUP_DRILL_STRATEGY", LATEST, "`latest` of the run's interval, or `random`")
    window_days: int = var("BACKUP_DRILL_WINDOW_DAYS", 30, "how far back `random` looks",
                           ge=1, le=3650)
    statement_timeout: float = var(
        "BACKUP_DRILL_STATEMENT_TIMEOUT_SECONDS", 300.0, "seconds each user assertion may run",
        gt=0, le=86400, unit="seconds", shown="`300`")
    no_owner: bool = var("BACKUP_DRILL_NO_OWNER", False, "restore without owners/privileges "
                         "(drill server without the source's roles)")
    assertions: tuple[Assertion, ...] = var(
        "BACKUP_DRILL_ASSERTIONS", (), "user assertions, a JSON list of {name, sql, expect} "
        "(see Restore drills)", shown="(none)")
    assertions_file: str | None = var(
        "BACKUP_DRILL_ASSERTIONS_FILE", None, "the same list in a JSON or YAML file; "
        "combined with BACKUP_DRILL_ASSERTIONS")

    @model_validator(mode="before")
    @classmethod
    def _load(cls, data: Any) -> Any:
        inline = data.get("BACKUP_DRILL_ASSERTIONS") if isinstance(data, dict) else None
        path = data.get("BACKUP_DRILL_ASSERTIONS_FILE") if isinstance(data, dict) else None
        if isinstance(inline, str) or path:
            data = {**data, "BACKUP_DRILL_ASSERTIONS": load_assertions(
                inline if isinstance(inline, str) else "", path or "")}
        return data


class PgToolsSettings(Settings):
    """Where the PostgreSQL tools of each major are (core/pgtools.py reads the same variable
    wherever it chooses a tool, with the same parser)."""

    group: ClassVar[str] = "PostgreSQL tools"

    pg_bindirs: Annotated[tuple[Path, ...], BeforeValidator(
        lambda v: tuple(split_dirs(v)) if isinstance(v, str) else v)] = var(
        "BACKUP_PG_BINDIRS", (), "bin folders of PostgreSQL tools (`os.pathsep` or comma "
        "separated), searched before `pg_config --bindir`, `/usr/lib/postgresql/N/bin` and the "
        "test bootstrap's `/var/tmp/amprenta-pg`; each must hold the tools. Per server the "
        "lowest major at least the server's is used (see Supported PostgreSQL versions)")


class DrDrillSettings(Settings):
    """How DR drills run: the whole-service recovery rehearsed into a throwaway server.

    :param rto_seconds: the whole-service RTO objective (``BACKUP_DRILL_RTO_SECONDS``)
    """

    group: ClassVar[str] = "DR drills"

    conn_id: ConnId | None = var(
        "BACKUP_DR_DRILL_CONN_ID", None, "a server to drill onto instead of a scratch cluster on "
        "the worker; it must hold none of the recovered databases",
        shown="(a scratch cluster on the worker)")
    next_major: bool = var("BACKUP_DR_DRILL_NEXT_MAJOR", False, "make the scratch cluster of "
                           "the next PostgreSQL major: an upgrade rehearsal")
    scratch_dir: str = var("BACKUP_DR_DRILL_SCRATCH_DIR", "/tmp",
                           "where the scratch cluster's folder goes")
    os_user: str = var("BACKUP_DR_DRILL_OS_USER", "postgres",
                       "OS user the scratch server runs as when the worker is root")
    parallel: int = var("BACKUP_DR_DRILL_PARALLEL", 2, "databases restored at once",
                        ge=1, le=16)
    rto_seconds: float = Field(DEFAULT_RTO_SECONDS, gt=0)

    @classmethod
    def env_defaults(cls, env: Mapping[str, str]) -> dict[str, Any]:
        return {"rto_seconds": DrillSettings.from_env(env).rto_seconds}

    @model_validator(mode="after")
    def _check(self) -> DrDrillSettings:
        if self.conn_id is not None and self.next_major:
            raise ConfigError("BACKUP_DR_DRILL_NEXT_MAJOR makes a scratch cluster of the next "
                              "major; with BACKUP_DR_DRILL_CONN_ID, point that connection at a "
                              "server of the major to rehearse and leave next_major off")
        return self
