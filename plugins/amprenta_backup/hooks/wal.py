"""WalArchiveHook: the WAL archive, the archived cluster's connection and the PITR settings."""

from __future__ import annotations

import shutil
import sys
from functools import cached_property
from pathlib import Path

from airflow.sdk import BaseHook

from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupConfig, PitrSettings
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.hooks.engine import EngineHook


class WalArchiveHook(BaseHook):
    """Everything point-in-time recovery needs from Airflow: storage, catalog and connections.

    :param config: backup settings; read from ``BACKUP_*`` when omitted
    :param pitr: PITR settings; read from ``BACKUP_PITR_*`` / ``BACKUP_WAL_*`` when omitted
    """

    hook_name = "amprenta-backup WAL archive"

    def __init__(self, config: BackupConfig | None = None,
                 pitr: PitrSettings | None = None) -> None:
        super().__init__()
        self.config = config or BackupConfig.from_env()
        self.pitr = pitr or PitrSettings.from_env()
        self.pitr.check_distinct([t.name for t in self.config.targets])

    @cached_property
    def engine(self) -> BackupEngine:
        return EngineHook(self.config).engine

    @cached_property
    def archive(self) -> WalArchive:
        return WalArchive(self.engine.storage, self.config.prefix, self.pitr.wal_target)

    def cluster_conninfo(self) -> PgConnInfo:
        """The archived cluster (``BACKUP_PITR_CONN_ID``)."""
        return self.engine.resolve(self.pitr.conn_id, None)

    def wal_command(self) -> str:
        """``amprenta-wal`` for ``restore_command``: BACKUP_WAL_COMMAND, else the installed one."""
        if self.pitr.wal_command:
            return self.pitr.wal_command
        beside = Path(sys.executable).parent / "amprenta-wal"
        return str(beside) if beside.is_file() else (shutil.which("amprenta-wal") or str(beside))

    def restore_env(self) -> dict[str, str]:
        """Storage settings and credentials ``amprenta-wal fetch`` needs, for a private file.

        For S3 the credentials come from the ``aws`` connection (BACKUP_AWS_CONN_ID).
        """
        storage = self.config.storage
        env = storage.to_env()
        if storage.storage_type != "s3":
            return env
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        s3 = S3Hook(aws_conn_id=storage.aws_conn_id, region_name=storage.s3_region)
        credentials = s3.get_credentials()
        endpoint = storage.s3_endpoint_url or s3.conn_config.get_service_endpoint_url("s3")
        env.update({"AWS_ACCESS_KEY_ID": credentials.access_key or "",
                    "AWS_SECRET_ACCESS_KEY": credentials.secret_key or ""})
        optional = {"AWS_SESSION_TOKEN": credentials.token, "BACKUP_S3_ENDPOINT_URL": endpoint}
        env.update({key: value for key, value in optional.items() if value})
        return env
