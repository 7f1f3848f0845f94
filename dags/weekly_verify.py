"""weekly_verify: read every backup not yet verified back whole, Sundays at 05:00 UTC.

### What it does
`list_unverified` lists the COMPLETED backups not yet verified (and VERIFIED ones older than
`BACKUP_REVERIFY_DAYS`); each gets its own mapped `verify` task, named by its backup id in the
grid: sha256 and size of the stored bytes against the manifest, and a full `pg_restore` read
of the archive. A good backup becomes VERIFIED, so `latest` restores prefer it. A backfilled
run verifies the backups that started inside its own week.

### When it fails
A corrupt backup is marked CORRUPT in the catalog (never offered for restore) and fails its
task without retry, sending one alert naming the backup; the other backups are still
verified.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable

from amprenta_backup.defaults import dag_kwargs
from amprenta_backup.operators.targets import BY_BACKUP
from amprenta_backup.operators.verify import BackupVerifyOperator, ListUnverifiedBackupsOperator

with DAG(
    dag_id="weekly_verify",
    description="sha256 and a full pg_restore read of every backup not yet verified",
    schedule=CronTriggerTimetable("0 5 * * 0", timezone="UTC", interval=timedelta(weeks=1)),
    doc_md=__doc__,
    **dag_kwargs("verify"),
):
    pending = ListUnverifiedBackupsOperator(task_id="list_unverified")
    BackupVerifyOperator.partial(
        task_id="verify", max_active_tis_per_dagrun=2, map_index_template=BY_BACKUP).expand(
        backup_id=pending.output
    )
