"""daily_backup: a logical backup of every configured target at 01:00 UTC, then a copy of
each to the second storage (``BACKUP_COPY_*``; the copy tasks skip when none is set)."""

from __future__ import annotations

from airflow.sdk import DAG

from amprenta_backup.defaults import dag_kwargs
from amprenta_backup.notifiers.alerts import deadline_alert
from amprenta_backup.operators.backup import BACKUPS_ALIAS, PostgresBackupOperator
from amprenta_backup.operators.copy import BackupCopyOperator
from amprenta_backup.operators.targets import ListBackupTargetsOperator

with DAG(
    dag_id="daily_backup",
    description="pg_dump of every BACKUP_TARGETS database into backup storage",
    schedule="0 1 * * *",
    doc_md=__doc__,
    **dag_kwargs(deadline=deadline_alert()),
):
    targets = ListBackupTargetsOperator(task_id="list_targets", retries=0)
    backups = PostgresBackupOperator.partial(task_id="backup", outlets=[BACKUPS_ALIAS]).expand(
        target=targets.output
    )
    # a task of its own per target, after the backups: a slow copy never holds one back
    backups >> BackupCopyOperator.partial(task_id="copy").expand(target=targets.output)
