"""daily_backup: a logical backup of every configured target at 01:00 UTC."""

from __future__ import annotations

from airflow.sdk import DAG

from amprenta_backup.defaults import START_DATE, TAGS, default_args
from amprenta_backup.operators.backup import BACKUPS_ALIAS, PostgresBackupOperator
from amprenta_backup.operators.targets import ListBackupTargetsOperator

with DAG(
    dag_id="daily_backup",
    description="pg_dump of every BACKUP_TARGETS database into backup storage",
    schedule="0 1 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=TAGS,
    doc_md=__doc__,
):
    targets = ListBackupTargetsOperator(task_id="list_targets", retries=0)
    PostgresBackupOperator.partial(task_id="backup", outlets=[BACKUPS_ALIAS]).expand(
        target=targets.output
    )
