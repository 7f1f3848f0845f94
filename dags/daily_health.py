"""daily_health: backup health checks at 06:00 UTC, as of each run's logical date."""

from __future__ import annotations

from airflow.sdk import DAG

from amprenta_backup.defaults import dag_kwargs
from amprenta_backup.operators.health import BackupHealthOperator

with DAG(
    dag_id="daily_health",
    description="backup age, failures, storage, catalog, client versions; alerts on problems",
    schedule="0 6 * * *",
    doc_md=__doc__,
    **dag_kwargs(),
):
    BackupHealthOperator(task_id="health_check", retries=0)
