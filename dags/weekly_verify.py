"""weekly_verify: read every backup not yet verified back whole, Sundays at 05:00 UTC.

Each backup gets its own mapped ``verify`` task: sha256 and size of the stored bytes against
the manifest, and a full ``pg_restore`` read of the archive. A corrupt backup fails its task
without retry (the others still run) and is marked CORRUPT in the catalog. A backfilled run
verifies the backups that started inside its own week.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable

from amprenta_backup.defaults import dag_kwargs
from amprenta_backup.operators.verify import BackupVerifyOperator, ListUnverifiedBackupsOperator

with DAG(
    dag_id="weekly_verify",
    description="sha256 and a full pg_restore read of every backup not yet verified",
    schedule=CronTriggerTimetable("0 5 * * 0", timezone="UTC", interval=timedelta(weeks=1)),
    doc_md=__doc__,
    **dag_kwargs(),
):
    pending = ListUnverifiedBackupsOperator(task_id="list_unverified")
    BackupVerifyOperator.partial(task_id="verify", max_active_tis_per_dagrun=2).expand(
        backup_id=pending.output
    )
