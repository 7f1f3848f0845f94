"""weekly_cleanup: retention on Sundays at 04:00 UTC.

### What it does
`cleanup` applies the retention policies to every target's backups: keep everything younger
than `BACKUP_RETENTION_DAYS`, the newest `BACKUP_KEEP_LAST`, and the daily/weekly/monthly
backups of `BACKUP_GFS`. Never the last good backup of a target. Deleted backups are removed
from storage and marked DELETED in the catalog.

### Trigger form
`dry_run`: only log the plan (what would be kept and deleted, and why); delete nothing.

### When it fails
A backup that cannot be deleted is kept and named in the one alert; the rest still go.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from amprenta_backup.defaults import dag_kwargs
from amprenta_backup.operators.retention import BackupRetentionOperator

with DAG(
    dag_id="weekly_cleanup",
    description="delete backups no retention policy keeps; never the last good one",
    schedule="0 4 * * 0",
    params={"dry_run": Param(False, type="boolean", title="Dry run",
                             description="Only log the plan (what is kept and deleted, and "
                                         "why); delete nothing.")},
    doc_md=__doc__,
    **dag_kwargs("cleanup"),
):
    BackupRetentionOperator(task_id="cleanup")
