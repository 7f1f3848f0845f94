"""daily_backup: a logical backup of every configured target at 01:00 UTC, then a copy of
each to the second storage.

### What it does
`list_targets` reads `BACKUP_TARGETS`; one mapped `backup` task per target (its name shows
in the grid) streams `pg_dump -Fc` through zstd and sha256 into backup storage and writes the
manifest last. The record in the catalog goes RUNNING -> COMPLETED (or FAILED, naming the
step). A cleared re-run of the same run reuses its backup ids. Then a `copy` task per
target copies its backup to the second storage (`BACKUP_COPY_*`; the copy tasks skip when
none is set), so a slow copy never holds a backup back.

### Settings
`BACKUP_TARGETS`, `BACKUP_STORAGE_TYPE` (`local`/`s3`) with `BACKUP_LOCAL_PATH` or
`BACKUP_S3_BUCKET`, `BACKUP_CATALOG_CONN_ID`, `BACKUP_COMPRESSION_LEVEL`,
`BACKUP_TASK_RETRIES`, `BACKUP_DEADLINE_HOURS` (alert when a run is late).

### When it fails
Each target is retried with backoff; a target that still fails sends one alert
(`BACKUP_ALERT_CHANNELS`) naming the target, the backup id and the error. The other targets
are still backed up. A backup that did not finish is never COMPLETED and never restored.
"""

from __future__ import annotations

from airflow.sdk import DAG

from amprenta_backup.core.constants import DAILY_RUN_CRON
from amprenta_backup.defaults import dag_kwargs
from amprenta_backup.notifiers.alerts import deadline_alert
from amprenta_backup.operators.backup import BACKUPS_ALIAS, PostgresBackupOperator
from amprenta_backup.operators.copy import BackupCopyOperator
from amprenta_backup.operators.targets import BY_TARGET, ListBackupTargetsOperator

with DAG(
    dag_id="daily_backup",
    description="pg_dump of every BACKUP_TARGETS database into backup storage",
    schedule=DAILY_RUN_CRON,
    doc_md=__doc__,
    **dag_kwargs("backup", deadline=deadline_alert()),
):
    targets = ListBackupTargetsOperator(task_id="list_targets", retries=0)
    backups = PostgresBackupOperator.partial(
        task_id="backup", outlets=[BACKUPS_ALIAS], map_index_template=BY_TARGET).expand(
        target=targets.output
    )
    # a task of its own per target, after the backups: a slow copy never holds one back
    backups >> BackupCopyOperator.partial(
        task_id="copy", map_index_template=BY_TARGET).expand(target=targets.output)
