"""Settings of WAL archiving and point-in-time recovery (declared once)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import model_validator

from amprenta_backup.core.constants import (
    MAX_AUTO_WAL_PARALLEL,
    WAL_TARGET_HELP,
    usable_cores,
)
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.layout import check_target_name
from amprenta_backup.core.settings.base import (
    Settings,
    var,
)
from amprenta_backup.core.wal.settings import default_spool_root, spool_dir


class WalSettings(Settings):
    """How ``amprenta-wal`` archives on the database host: where, how many at once, how long."""

    group: ClassVar[str] = "WAL archiving (database host, `amprenta-wal`)"

    target: str = var("BACKUP_WAL_TARGET", "", WAL_TARGET_HELP, shown="(required)")
    spool_root: Path = var(
        "BACKUP_WAL_SPOOL", lambda: default_spool_root(os.environ),
        "folder for the asynchronous archiver's markers and log",
        shown="`/tmp/amprenta-wal-<uid>`")
    parallel: int = var("BACKUP_WAL_PARALLEL",
                        lambda: min(usable_cores() + 1, MAX_AUTO_WAL_PARALLEL),
                        "segments the archiver pushes at the same time: one more than the CPU "
                        "cores keeps them busy while a push waits on storage", ge=1, le=32,
                        shown=f"CPU cores + 1, at most {MAX_AUTO_WAL_PARALLEL}")
    compression_level: int = var(
        "BACKUP_WAL_COMPRESSION_LEVEL", 1, "zstd level of stored segments: 1-19, or -1 to -50 "
        "for zstd's fast levels (faster, larger; not 0)", ge=-50, le=19)
    catchup_level: int = var(
        "BACKUP_WAL_CATCHUP_LEVEL", -5, "zstd level while the archiver is behind (at least "
        "`BACKUP_WAL_CATCHUP_BACKLOG` segments wait): a backlog reaches storage sooner, its "
        "segments about 1.6x larger; equal to `BACKUP_WAL_COMPRESSION_LEVEL`: no catch-up",
        ge=-50, le=19)
    catchup_backlog: int = var("BACKUP_WAL_CATCHUP_BACKLOG", 8, "segments waiting behind "
                               "one from which it and the ones after it, until none waits, "
                               "are pushed at `BACKUP_WAL_CATCHUP_LEVEL`", ge=1, le=100000)
    async_push: bool = var("BACKUP_WAL_ASYNC", True, "push `.ready` segments ahead from one "
                           "long-lived archiver process (`false`: push synchronously)")
    wait_seconds: float = var("BACKUP_WAL_WAIT_SECONDS", 60.0, "how long `push` waits for the "
                              "archiver before it fails, so that PostgreSQL retries", gt=0,
                              le=86400, unit="seconds", shown="`60`")
    idle_exit_seconds: float = var("BACKUP_WAL_IDLE_EXIT_SECONDS", 60.0, "the archiver exits "
                                   "after this long with nothing to do (0 = never)", ge=0,
                                   le=86400, shown="`60`")

    @classmethod
    def env_defaults(cls, env: Mapping[str, str]) -> dict[str, Any]:
        return {} if cls.is_set("spool_root", env) else {"spool_root": default_spool_root(env)}

    @model_validator(mode="after")
    def _check(self) -> WalSettings:
        if not self.target:
            raise ConfigError("BACKUP_WAL_TARGET is not set; set it to the name this cluster's "
                              "WAL is stored under (the Airflow connection id of the cluster, "
                              "e.g. BACKUP_WAL_TARGET=pg_main)")
        check_target_name(self.target)
        for name, level in (("COMPRESSION", self.compression_level),
                            ("CATCHUP", self.catchup_level)):
            if level == 0:
                raise ConfigError(f"BACKUP_WAL_{name}_LEVEL=0 is not a zstd level; use 1-19 "
                                  "(higher: smaller and slower) or -1 to -50 (zstd's fast "
                                  "levels: faster and larger), e.g. "
                                  f"BACKUP_WAL_{name}_LEVEL={1 if name == 'COMPRESSION' else -1}")
        return self

    def spool_dir(self, pg_wal: Path) -> Path:
        """This cluster's spool folder: one per target and ``pg_wal`` folder."""
        return spool_dir(self.spool_root, self.target, pg_wal)


class PitrSettings(Settings):
    """Point-in-time recovery on the Airflow side: base backups, WAL checks, restores, drills."""

    group: ClassVar[str] = "Point-in-time recovery (Airflow)"

    conn_id: str = var("BACKUP_PITR_CONN_ID", "", "Postgres connection of the archived cluster "
                       "(needs REPLICATION for `pg_basebackup`); PITR is off when unset",
                       shown="(required for PITR)")
    wal_target: str = var("BACKUP_WAL_TARGET", "", WAL_TARGET_HELP,
                          shown="`<BACKUP_PITR_CONN_ID>.pitr` on Airflow")
    wal_command: str | None = var(
        "BACKUP_WAL_COMMAND", None, "the `amprenta-wal` that `restore_command` runs; the "
        "restored server's OS user must be able to execute it",
        shown="`amprenta-wal` beside Airflow's Python")
    os_user: str = var("BACKUP_PITR_OS_USER", "postgres",
                       "OS user restored servers run as when the worker runs as root")
    scratch_dir: str = var("BACKUP_PITR_SCRATCH_DIR", "/tmp",
                           "where drills make their scratch clusters")
    rpo_seconds: int = var("BACKUP_WAL_RPO_SECONDS", 900, "WAL health is critical when "
                           "unarchived WAL is older (the spec's 15 minutes)", ge=1, le=7 * 86400)
    archive_wait_seconds: int = var(
        "BACKUP_WAL_ARCHIVE_WAIT_SECONDS", 3600, "how long a base backup waits for its last "
        "segment to be archived", ge=1, le=86400)

    @model_validator(mode="before")
    @classmethod
    def _default_target(cls, data: Any) -> Any:
        if isinstance(data, dict) and not (data.get("BACKUP_WAL_TARGET")
                                           or data.get("wal_target")):
            conn_id = data.get("BACKUP_PITR_CONN_ID") or data.get("conn_id") or ""
            data = {**data, "BACKUP_WAL_TARGET": f"{conn_id}.pitr"}
        return data

    @model_validator(mode="after")
    def _check(self) -> PitrSettings:
        if not self.conn_id:
            raise ConfigError("BACKUP_PITR_CONN_ID is not set; set it to the Airflow Postgres "
                              "connection of the cluster whose WAL is archived (e.g. pg_main)")
        check_target_name(self.wal_target)
        return self

    @classmethod
    def configured(cls, environ: Mapping[str, str] | None = None) -> bool:
        """Whether point-in-time recovery is set up (``BACKUP_PITR_CONN_ID`` is set)."""
        return cls.is_set("conn_id", environ)

    def check_distinct(self, logical_targets: list[str]) -> None:
        """Refuse a WAL target that is also a logical target: their backups would mix."""
        if self.wal_target in logical_targets:
            raise ConfigError(
                f"BACKUP_WAL_TARGET={self.wal_target!r} is also in BACKUP_TARGETS; base backups "
                "and pg_dump backups would share one history (retention, drills, restores). Use "
                f"another name, e.g. BACKUP_WAL_TARGET={self.wal_target}.pitr, on the database "
                "host too")
