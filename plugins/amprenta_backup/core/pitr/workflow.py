"""Point-in-time recovery for one archived cluster: what :class:`BackupEngine` hands out.

Base backups, the choice of a base backup for a target time, restores to a time, PITR
drills, WAL health and WAL retention all start here, so operators and CLI commands wire
nothing by hand and give the same answers for the same settings.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.connections import Resolver
from amprenta_backup.core.encryption import KeyService
from amprenta_backup.core.health import CheckResult
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pitr.basebackup import BaseBackupRunner
from amprenta_backup.core.pitr.drill import PitrDrill
from amprenta_backup.core.pitr.localserver import server_user
from amprenta_backup.core.pitr.restore import (
    PitrReport,
    PitrRequest,
    PitrRestore,
    choose_base_backup,
)
from amprenta_backup.core.records.heartbeat import DEFAULT_TIMEOUT
from amprenta_backup.core.settings import PitrSettings
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.health import cluster_wal_checks
from amprenta_backup.core.wal.retention import WalCleanupReport, clean_wal


@dataclass(eq=False)
class PointInTime:
    """The PITR workflows of the cluster ``BACKUP_PITR_CONN_ID``.

    :param settings: the PITR settings
    :param storage: backup storage (base backups and WAL)
    :param catalog: the backup catalog
    :param prefix: key prefix of everything stored
    :param resolve: ``(conn_id, database) -> PgConnInfo``
    :param fetch_env: storage settings and credentials for ``amprenta-wal fetch``
    :param heartbeat_timeout: a RUNNING base backup silent this long is abandoned
    :param keys: encrypts base backups (and opens them) when encryption is on
    """

    settings: PitrSettings
    storage: Storage
    catalog: Catalog
    prefix: str
    resolve: Resolver
    fetch_env: Callable[[], dict[str, str]]
    heartbeat_timeout: timedelta = DEFAULT_TIMEOUT
    keys: KeyService | None = None

    @property
    def target(self) -> str:
        """The name base backups and WAL are stored under (``BACKUP_WAL_TARGET``)."""
        return self.settings.wal_target

    @cached_property
    def archive(self) -> WalArchive:
        return WalArchive(self.storage, self.prefix, self.target, keys=self.keys)

    def cluster_conninfo(self) -> PgConnInfo:
        """The archived cluster (``BACKUP_PITR_CONN_ID``)."""
        return self.resolve(self.settings.conn_id, None)

    def wal_command(self) -> str:
        """``amprenta-wal`` for ``restore_command``: BACKUP_WAL_COMMAND, else the installed one."""
        if self.settings.wal_command:
            return self.settings.wal_command
        beside = Path(sys.executable).parent / "amprenta-wal"
        return str(beside) if beside.is_file() else (shutil.which("amprenta-wal") or str(beside))

    def os_user(self) -> str | None:
        """The OS user restored servers run as (None: this process's own user)."""
        return server_user(self.settings.os_user)

    def base_backups(self) -> BaseBackupRunner:
        return BaseBackupRunner(self.storage, self.catalog, self.prefix,
                                heartbeat_timeout=self.heartbeat_timeout, keys=self.keys)

    def choose(self, target_time: datetime | None, backup_id: str | None = None) -> Manifest:
        """The base backup a restore to ``target_time`` starts from."""
        return choose_base_backup(self.catalog, self.storage, self.target, target_time,
                                  backup_id)

    def restorer(self) -> PitrRestore:
        return PitrRestore(self.storage, self.archive, self.wal_command(), self.fetch_env(),
                           self.os_user(), self.keys)

    def restore(self, request: PitrRequest, wait_seconds: float = 3600) -> PitrReport:
        """Restore the chosen base backup and replay WAL up to ``request.target_time``."""
        manifest = self.choose(request.target_time, request.backup_id)
        return self.restorer().run(manifest, request, self.cluster_conninfo(), wait_seconds)

    def drill(self) -> PitrDrill:
        return PitrDrill(self)

    def wal_health(self, now: datetime, conn: PgConnInfo | None = None) -> list[CheckResult]:
        """The archiver checks of the cluster, as of ``now`` (the archiver's state is live)."""
        return cluster_wal_checks(conn or self.cluster_conninfo(), self.target, now,
                                  self.settings.rpo_seconds, lambda: self.archive)

    def wal_retention(self, dry_run: bool = False) -> WalCleanupReport:
        """Remove archived WAL that no stored base backup needs."""
        return clean_wal(self.archive, dry_run=dry_run)
