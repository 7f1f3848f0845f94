"""daily_health: backup health checks at 06:00 UTC, as of each run's logical date.

### What it does
One `health_check` task checks the catalog and storage (reachable, writable), and per
target: the server is reachable, the age of the newest good backup
(`BACKUP_HEALTH_MAX_AGE_HOURS`), failed and corrupt backups of the last 7 days, the
`pg_dump` version, the worker's clock, and WAL archiving when PITR is set up. Every result is
logged and stored in the catalog's `health_checks`.

### Settings
`BACKUP_HEALTH_CHECK_ENABLED`, `BACKUP_HEALTH_MAX_AGE_HOURS`, `BACKUP_ALERT_CHANNELS`.

### When it fails
Warnings and criticals are sent as alerts (`BACKUP_ALERT_CHANNELS`), one per check; a
critical check also fails the task, without a second alert.
"""

from __future__ import annotations

from airflow.sdk import DAG

from amprenta_backup.defaults import dag_kwargs
from amprenta_backup.operators.health import BackupHealthOperator

with DAG(
    dag_id="daily_health",
    description="backup age, failures, storage, catalog, client versions; alerts on problems",
    schedule="0 6 * * *",
    doc_md=__doc__,
    **dag_kwargs("health"),
):
    BackupHealthOperator(task_id="health_check", retries=0)
