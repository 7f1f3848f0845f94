"""Base backup operators: take one with pg_basebackup, then complete it once its WAL is archived."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from amprenta_backup.core import layout
from amprenta_backup.core.models import Manifest, human_bytes
from amprenta_backup.core.wal.ranges import WalRange
from amprenta_backup.hooks.context import backup_id_for, run_context
from amprenta_backup.operators.engine import fail_without_retry
from amprenta_backup.operators.pitr import PitrOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class PostgresBaseBackupOperator(PitrOperator):
    """pg_basebackup of ``BACKUP_PITR_CONN_ID`` (server-side zstd) into backup storage.

    The backup stays RUNNING in the catalog; :class:`CompleteBaseBackupOperator` marks it
    COMPLETED once the WAL segment holding its stop LSN is archived. Returns the manifest
    and that segment (``stop_segment``) for XCom. A retry reuses the backup id.

    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    ui_color = "#cde8f6"

    def execute(self, context: Context) -> dict[str, Any]:
        self.skip_unless_configured()
        run = run_context(context)
        target = self.pitr.target
        with fail_without_retry():
            conn = self.pitr.cluster_conninfo()
            runner = self.pitr.base_backups()
        backup_id = backup_id_for(run, target)
        self.log.info("base backup of %s (%s) as %s", target, conn.describe(), backup_id)
        manifest = runner.take(target, conn, run, backup_id)
        wal = WalRange.of(manifest)
        self.log.info("stored %s (%s raw); needs WAL %s..%s", human_bytes(manifest.stored_bytes),
                      human_bytes(manifest.raw_bytes), wal.start_segment, wal.stop_segment)
        return {"backup_id": backup_id, "target": target, "stop_segment": wal.stop_segment,
                "manifest": manifest.to_dict()}


class CompleteBaseBackupOperator(PitrOperator):
    """Write the manifest of the base backup made by ``backup_task_id`` once its stop segment
    is archived; otherwise mark it FAILED and fail (no retry). Meant to run with
    ``trigger_rule="all_done"`` after the sensor, so a backup never stays RUNNING.

    :param backup_task_id: task id of the :class:`PostgresBaseBackupOperator`
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    def __init__(self, *, backup_task_id: str = "base_backup", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_task_id = backup_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        taken: Any = context["ti"].xcom_pull(task_ids=self.backup_task_id)
        if not taken:
            self.skip_unless_configured()
            raise AirflowFailException(f"task {self.backup_task_id} did not store a base "
                                       "backup; nothing to complete (see its log)")
        manifest = Manifest.from_json(json.dumps(taken["manifest"]))
        with fail_without_retry():
            self.pitr.base_backups().complete(manifest, self.pitr.archive)
        uri = self.engine.storage.uri(layout.folder_of(manifest.key))
        self.log.info("base backup %s is complete at %s", manifest.backup_id, uri)
        return {"backup_id": manifest.backup_id, "target": manifest.target, "uri": uri,
                "stored_bytes": manifest.stored_bytes, "wal": manifest.wal}
