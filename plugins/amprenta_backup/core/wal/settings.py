"""WalSettings: the ``BACKUP_WAL_*`` settings of ``amprenta-wal``, from the environment or a file.

Stdlib only: ``amprenta-wal push`` reads these on every call from ``archive_command``, so
importing this module must stay cheap (no boto3, no zstandard, no psycopg).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from amprenta_backup.core.errors import ConfigError

CONFIG_VARIABLE = "AMPRENTA_WAL_CONFIG"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _number(env: Mapping[str, str], name: str, default: float, kind: type[float] | type[int],
            ) -> float:
    raw = env.get(name, "").strip()
    try:
        return kind(raw) if raw else default
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name}={raw!r} is not {what}") from None


def read_config_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env-style file (``#`` comments, optional quotes).

    The file holds storage credentials, so it must not be readable by group or others.
    """
    file = Path(path)
    try:
        info = file.stat()
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"amprenta-wal config file {file} does not exist; create it or fix "
                          f"--config / {CONFIG_VARIABLE}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read amprenta-wal config file {file} ({exc.strerror}); it "
                          "must be readable by the OS user the PostgreSQL server runs as") \
            from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"amprenta-wal config file {file} is mode "
                          f"{stat.S_IMODE(info.st_mode):o}; it holds credentials, so make it "
                          f"private: chmod 600 {file}")
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError(f"{file} line {number} is not KEY=VALUE; fix or remove it")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def settings_environment(config_file: str | None = None,
                         environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment with the config file's values on top (the file wins).

    The file is ``config_file``, else ``$AMPRENTA_WAL_CONFIG``, else none.
    """
    env = dict(os.environ if environ is None else environ)
    path = config_file or env.get(CONFIG_VARIABLE)
    if path:
        env.update(read_config_file(path))
        env[CONFIG_VARIABLE] = str(Path(path).resolve())
    return env


def write_config_file(path: Path, values: Mapping[str, str]) -> Path:
    """Write an env-style config file with mode 600 (the inverse of :func:`read_config_file`)."""
    lines = []
    for key, value in values.items():
        if "\n" in value or "'" in value:
            raise ConfigError(f"{key}: a value with a newline or a quote cannot be written")
        lines.append(f"{key}='{value}'")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path


@dataclass(frozen=True)
class WalSettings:
    """How ``amprenta-wal`` archives: where, how many at once, and how long it waits.

    :param target: name WAL is stored under, ``{prefix}/{target}/wal/`` (BACKUP_WAL_TARGET)
    :param spool_root: folder for the asynchronous archiver's markers and log
        (BACKUP_WAL_SPOOL; default a private folder under the system temp dir)
    :param parallel: segments pushed at the same time by the archiver (BACKUP_WAL_PARALLEL)
    :param compression_level: zstd level of stored segments (BACKUP_WAL_COMPRESSION_LEVEL)
    :param async_push: push ``.ready`` segments ahead from one long-lived process
        (BACKUP_WAL_ASYNC)
    :param wait_seconds: how long ``push`` waits for that process before it fails, so that
        PostgreSQL retries (BACKUP_WAL_WAIT_SECONDS)
    :param idle_exit_seconds: the archiver process exits after this long with nothing to do;
        0 = never (BACKUP_WAL_IDLE_EXIT_SECONDS)
    """

    target: str
    spool_root: Path
    parallel: int = 2
    compression_level: int = 1
    async_push: bool = True
    wait_seconds: float = 60.0
    idle_exit_seconds: float = 60.0

    def __post_init__(self) -> None:
        from amprenta_backup.core.layout import check_target_name

        if not self.target:
            raise ConfigError("BACKUP_WAL_TARGET is not set; set it to the name this cluster's "
                              "WAL is stored under (the Airflow connection id of the cluster, "
                              "e.g. BACKUP_WAL_TARGET=pg_main)")
        check_target_name(self.target)
        if not 1 <= self.parallel <= 32:
            raise ConfigError(f"BACKUP_WAL_PARALLEL={self.parallel} is out of range; use 1-32")
        if not 1 <= self.compression_level <= 19:
            raise ConfigError(f"BACKUP_WAL_COMPRESSION_LEVEL={self.compression_level} is out of "
                              "range; use 1-19")
        if self.wait_seconds <= 0 or self.idle_exit_seconds < 0:
            raise ConfigError("BACKUP_WAL_WAIT_SECONDS must be > 0 and "
                              "BACKUP_WAL_IDLE_EXIT_SECONDS >= 0")

    def spool_dir(self, pg_wal: Path) -> Path:
        """This cluster's spool folder: one per target and ``pg_wal`` folder."""
        digest = hashlib.sha256(str(pg_wal.resolve()).encode()).hexdigest()[:10]
        return self.spool_root / f"{self.target}-{digest}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WalSettings:
        """Read ``BACKUP_WAL_*``; unset ones keep their defaults."""
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            return _number(env, name, default, float)

        raw_async = env.get("BACKUP_WAL_ASYNC", "true").strip().lower()
        if raw_async not in _TRUE | _FALSE:
            raise ConfigError(f"BACKUP_WAL_ASYNC={raw_async!r} is not a boolean; use true/false")
        default_spool = Path(env.get("TMPDIR") or "/tmp") / f"amprenta-wal-{os.getuid()}"
        return cls(
            target=env.get("BACKUP_WAL_TARGET", "").strip(),
            spool_root=Path(env.get("BACKUP_WAL_SPOOL", "").strip() or default_spool),
            parallel=int(number("BACKUP_WAL_PARALLEL", 2)),
            compression_level=int(number("BACKUP_WAL_COMPRESSION_LEVEL", 1)),
            async_push=raw_async in _TRUE,
            wait_seconds=number("BACKUP_WAL_WAIT_SECONDS", 60.0),
            idle_exit_seconds=number("BACKUP_WAL_IDLE_EXIT_SECONDS", 60.0),
        )


@dataclass(frozen=True)
class PitrSettings:
    """Point-in-time recovery on the Airflow side: base backups, WAL checks, restores, drills.

    :param conn_id: Postgres connection of the archived cluster, with REPLICATION rights
        (BACKUP_PITR_CONN_ID)
    :param wal_target: name base backups and WAL are stored under; the same value as
        BACKUP_WAL_TARGET on the database host (BACKUP_WAL_TARGET, default ``<conn_id>.pitr``)
    :param wal_command: ``amprenta-wal`` for ``restore_command``, runnable by ``os_user``
        (BACKUP_WAL_COMMAND, default the one installed beside this Python)
    :param os_user: OS user restored servers run as when Airflow runs as root
        (BACKUP_PITR_OS_USER)
    :param scratch_dir: where drills create their scratch clusters (BACKUP_PITR_SCRATCH_DIR)
    :param rpo_seconds: WAL health is critical when unarchived WAL is older
        (BACKUP_WAL_RPO_SECONDS, the spec's 15 minutes)
    :param archive_wait_seconds: how long a base backup waits for its last WAL segment to be
        archived (BACKUP_WAL_ARCHIVE_WAIT_SECONDS)
    """

    conn_id: str
    wal_target: str
    wal_command: str | None = None
    os_user: str = "postgres"
    scratch_dir: str = "/tmp"
    rpo_seconds: int = 900
    archive_wait_seconds: int = 3600

    def __post_init__(self) -> None:
        from amprenta_backup.core.layout import check_target_name

        if not self.conn_id:
            raise ConfigError("BACKUP_PITR_CONN_ID is not set; set it to the Airflow Postgres "
                              "connection of the cluster whose WAL is archived (e.g. pg_main)")
        check_target_name(self.wal_target)
        if self.rpo_seconds < 1 or self.archive_wait_seconds < 1:
            raise ConfigError("BACKUP_WAL_RPO_SECONDS and BACKUP_WAL_ARCHIVE_WAIT_SECONDS must "
                              "be positive")

    def check_distinct(self, logical_targets: list[str]) -> None:
        """Refuse a WAL target that is also a logical target: their backups would mix."""
        if self.wal_target in logical_targets:
            raise ConfigError(
                f"BACKUP_WAL_TARGET={self.wal_target!r} is also in BACKUP_TARGETS; base backups "
                "and pg_dump backups would share one history (retention, drills, restores). Use "
                f"another name, e.g. BACKUP_WAL_TARGET={self.wal_target}.pitr, on the database "
                "host too")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PitrSettings:
        env = os.environ if environ is None else environ
        conn_id = env.get("BACKUP_PITR_CONN_ID", "").strip()

        def whole(name: str, default: int) -> int:
            return int(_number(env, name, default, int))

        return cls(
            conn_id=conn_id,
            wal_target=env.get("BACKUP_WAL_TARGET", "").strip() or f"{conn_id}.pitr",
            wal_command=env.get("BACKUP_WAL_COMMAND", "").strip() or None,
            os_user=env.get("BACKUP_PITR_OS_USER", "").strip() or "postgres",
            scratch_dir=env.get("BACKUP_PITR_SCRATCH_DIR", "").strip() or "/tmp",
            rpo_seconds=whole("BACKUP_WAL_RPO_SECONDS", 900),
            archive_wait_seconds=whole("BACKUP_WAL_ARCHIVE_WAIT_SECONDS", 3600),
        )
