"""A sandbox cluster that archives its WAL through ``amprenta-wal`` into a moto bucket."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from amprenta_backup.core.settings import WalSettings
from amprenta_backup.core.storage import S3Storage
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.settings import write_config_file
from amprenta_backup.core.wal.shellpush import archive_command_line
from amprenta_backup.core.wal.spool import Spool
from amprenta_backup.sandbox.cluster import ClusterBase, ThrowawayCluster, server_os_user
from amprenta_backup.sandbox.s3server import MotoServer
from amprenta_backup.sandbox.serverenv import wal_command

PREFIX = "database"


@dataclass
class WalSetup:
    """An archiving cluster and everything needed to reach its archive."""

    cluster: ThrowawayCluster
    folder: Path
    config: Path
    command: str
    archive: WalArchive
    settings: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, config: Path | None = None, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run ``amprenta-wal --config FILE ARGS`` (as ourselves) and return the result."""
        argv = [self.command, "--config", str(config or self.config), *args]
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "AWS_"))}
        return subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              env={**clean, **(env or {})})

    def switch_wal(self, timeout: float = 60.0) -> str:
        """Close the current segment and wait until PostgreSQL reports it archived."""
        name = str(self.cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
        wait_archived(self.cluster, name, timeout)
        return name

    def stop(self) -> None:
        self.cluster.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def wal_settings(moto: MotoServer, bucket: str, target: str, spool: Path) -> dict[str, str]:
    """The env-style settings of ``amprenta-wal`` for a moto bucket."""
    return {
        "BACKUP_STORAGE_TYPE": "s3", "BACKUP_S3_BUCKET": bucket, "BACKUP_S3_PREFIX": PREFIX,
        "BACKUP_S3_ENDPOINT_URL": moto.endpoint_url, "BACKUP_S3_REGION": moto.region,
        "AWS_ACCESS_KEY_ID": moto.access_key, "AWS_SECRET_ACCESS_KEY": moto.secret_key,
        "BACKUP_WAL_TARGET": target, "BACKUP_WAL_SPOOL": str(spool),
        "BACKUP_WAL_IDLE_EXIT_SECONDS": "5",
    }


def private_folder(os_user: str | None) -> Path:
    """A mode-700 folder under /tmp owned by the server's OS user."""
    folder = Path(tempfile.mkdtemp(prefix="amprenta-wal-", dir="/tmp"))
    if os_user is not None:
        entry = pwd.getpwnam(os_user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


def write_owned_config(folder: Path, values: dict[str, str], os_user: str | None,
                       name: str = "wal.env") -> Path:
    path = write_config_file(folder / name, values)
    if os_user is not None:
        entry = pwd.getpwnam(os_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def start_archiving_cluster(moto: MotoServer, bucket: str, target: str,
                            extra: dict[str, str] | None = None,
                            wal_extra: dict[str, str] | None = None,
                            shell_line: bool = True) -> WalSetup:
    """Start a cluster with ``archive_command = 'amprenta-wal --config F push %p %f'``, then
    (``shell_line``) switch to the line ``amprenta-wal archive-command`` prints, as the docs
    advise (``extra``: server settings; ``wal_extra``: more ``amprenta-wal`` settings)."""
    os_user = server_os_user()
    folder = private_folder(os_user)
    settings = {**wal_settings(moto, bucket, target, folder / "spool"), **(wal_extra or {})}
    config = write_owned_config(folder, settings, os_user)
    command = wal_command(os_user)
    cluster = ThrowawayCluster(settings={
        "wal_level": "replica", "archive_mode": "on",
        "archive_command": f"{command} --config {config} push %p %f",
        **(extra or {})})
    try:
        cluster.start()
        if shell_line:
            pg_wal = cluster.data_dir / "pg_wal"
            wal = WalSettings.from_env(settings)
            line = archive_command_line(command, config, pg_wal, Spool(wal.spool_dir(pg_wal)),
                                        wal.wait_seconds)
            cluster.execute(sql.SQL("ALTER SYSTEM SET archive_command = {}").format(
                sql.Literal(line)))
            cluster.execute("SELECT pg_reload_conf()")
    except BaseException:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    archive = WalArchive(S3Storage(moto.client(), bucket), PREFIX, target)
    return WalSetup(cluster, folder, config, command, archive, settings)


def archiver_stats(cluster: ThrowawayCluster) -> dict[str, object]:
    row = cluster.query("SELECT archived_count, last_archived_wal, failed_count, "
                        "last_failed_wal FROM pg_stat_archiver")[0]
    return dict(zip(("archived_count", "last_archived_wal", "failed_count",
                     "last_failed_wal"), row, strict=True))


def wait_archived(cluster: ThrowawayCluster, name: str, timeout: float = 60.0) -> None:
    """Wait until ``pg_stat_archiver`` reports ``name`` (or a later segment) archived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = archiver_stats(cluster)
        if stats["last_archived_wal"] is not None and str(stats["last_archived_wal"]) >= name:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} not archived within {timeout} s: {archiver_stats(cluster)}")


def a_wal_segment(cluster: ClusterBase) -> Path:
    """A real, completed WAL segment file of a sandbox cluster (after a WAL switch)."""
    cluster.query("SELECT pg_switch_wal()")
    folder = Path(cluster.data_dir) / "pg_wal"  # type: ignore[attr-defined]
    return sorted(p for p in folder.iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name))[0]


def scratch_parent() -> Path:
    """A folder under /tmp the server's OS user can traverse, for restored data directories."""
    folder = Path(tempfile.mkdtemp(prefix="amprenta-pitr-test-", dir="/tmp"))
    folder.chmod(0o711)
    return folder
