"""weekly_cleanup: retention on Sundays at 04:00 UTC; trigger with dry_run=true to see the plan."""

from __future__ import annotations

from airflow.sdk import DAG, Param

from amprenta_backup.defaults import dag_kwargs
from amprenta_backup.operators.retention import BackupRetentionOperator

with DAG(
    dag_id="weekly_cleanup",
    description="delete backups no retention policy keeps; never the last good one",
    schedule="0 4 * * 0",
    params={"dry_run": Param(False, type="boolean",
                             description="only log the plan; delete nothing")},
    doc_md=__doc__,
    **dag_kwargs(),
):
    BackupRetentionOperator(task_id="cleanup")
