"""weekly_base_backup: a pg_basebackup of the archived cluster for point-in-time recovery.

### What it does
Sundays 00:30 UTC, `base_backup` takes `pg_basebackup -Z server-zstd` of
`BACKUP_PITR_CONN_ID`. The backup counts (manifest written, record COMPLETED) only once the
WAL segment holding its stop LSN is archived: `wait_for_wal` waits for it in the triggerer,
then `complete` writes the manifest. `cleanup_wal` removes WAL older than the oldest stored
base backup.

### When it fails
A base backup whose WAL never arrives stays incomplete (never offered to `pitr_restore`) and
sends one alert; check the server's `archive_command`. Paused when Airflow first sees it:
unpause it once WAL archiving is set up.
"""

from __future__ import annotations

from airflow.sdk import DAG

from amprenta_backup.defaults import optional_dag_kwargs
from amprenta_backup.operators.basebackup import (
    CompleteBaseBackupOperator,
    PostgresBaseBackupOperator,
)
from amprenta_backup.operators.copy import PitrCopyOperator
from amprenta_backup.operators.wal_retention import WalRetentionOperator
from amprenta_backup.sensors.wal import WalSegmentSensor

with DAG(
    dag_id="weekly_base_backup",
    description="pg_basebackup (server-side zstd) of BACKUP_PITR_CONN_ID, complete once its "
                "WAL is archived",
    schedule="30 0 * * 0",
    doc_md=__doc__,
    **optional_dag_kwargs("backup", "pitr"),
):
    base_backup = PostgresBaseBackupOperator(task_id="base_backup")
    wait_for_wal = WalSegmentSensor(
        task_id="wait_for_wal", poke_interval=5, retries=0,
        segment="{{ ti.xcom_pull(task_ids='base_backup')['stop_segment'] }}")
    complete = CompleteBaseBackupOperator(task_id="complete", backup_task_id="base_backup",
                                          trigger_rule="all_done", retries=0)
    copy = PitrCopyOperator(task_id="copy", backup_task_id="complete")
    # the copy first, so it gets the WAL retention removes; a skipped copy does not stop it
    cleanup_wal = WalRetentionOperator(task_id="cleanup_wal", trigger_rule="none_failed")
    base_backup >> wait_for_wal >> complete >> copy >> cleanup_wal
