"""monthly_restore_drill: restore a backup of every target into a scratch database, check the
data itself and hold the recovery time against the objective; 03:00 UTC on the 1st.

### What it does
Per target (a task group mapped over `BACKUP_TARGETS`, named by target in the grid):
`setup` picks the backup: the one given in the trigger form, else the latest of the run's
month (a backfilled run drills its own month), or a random one of the last
`BACKUP_DRILL_WINDOW_DAYS` with `BACKUP_DRILL_STRATEGY=random`; only backups in the configured
storage are drilled. `restore` restores it into `amprenta_drill_*` on `BACKUP_DRILL_CONN_ID`
(checksum first); `checks` counts rows against the manifest and re-checks foreign keys, the
CHECK constraints of tables and of domains, sequences, `BACKUP_DRILL_ASSERTIONS` and the RTO
against `BACKUP_DRILL_RTO_SECONDS`; `teardown` always runs and drops only the database the
drill created. A passed drill read the whole backup, so the backup becomes VERIFIED.

### Trigger form
`backup_id`: drill this backup (an id from `amprenta-backup list`; targets other than its
own are skipped). Empty: pick as above.

### Evidence
`drill_runs` in the catalog and `drill-<id>.json`/`.md` beside the backup.

### When it fails
A failed check fails the `checks` task (a corrupt backup: `restore`, and it is marked
CORRUPT), naming each failed check, with one alert.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable, Param
from dateutil.relativedelta import relativedelta

from amprenta_backup.defaults import dag_kwargs
from amprenta_backup.operators.drill import drill_target
from amprenta_backup.operators.targets import ListBackupTargetsOperator

with DAG(
    dag_id="monthly_restore_drill",
    description="restore a backup into a scratch database, check its data, measure the RTO",
    schedule=CronTriggerTimetable("0 3 1 * *", timezone="UTC", interval=relativedelta(months=1)),
    doc_md=__doc__,
    params={
        "backup_id": Param(
            None, type=["null", "string"], pattern=r"^\d{8}T\d{6}Z-[0-9a-f]{8}$",
            title="Backup id",
            description="Drill this backup (an id from `amprenta-backup list`); the other "
                        "targets are skipped. Empty: the latest of the run's month, or "
                        "BACKUP_DRILL_STRATEGY."),
    },
    **dag_kwargs("drill", "verify"),
):
    targets = ListBackupTargetsOperator(task_id="list_targets", retries=0)
    drill_target.expand(target=targets.output)
