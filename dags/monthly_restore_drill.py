"""monthly_restore_drill: restore a backup of every target into a scratch database, check the
data itself and hold the recovery time against the objective; 03:00 UTC on the 1st.

Per target (a task group mapped over ``BACKUP_TARGETS``): ``setup`` picks the backup (the
latest of the run's month by default, so a backfilled run drills its own month; or a random
one of the last ``BACKUP_DRILL_WINDOW_DAYS`` with ``BACKUP_DRILL_STRATEGY=random``) ->
``restore`` into ``amprenta_drill_*`` on ``BACKUP_DRILL_CONN_ID`` (checksum first) ->
``checks`` (row counts, foreign keys, CHECK constraints, sequences, ``BACKUP_DRILL_ASSERTIONS``,
RTO against ``BACKUP_DRILL_RTO_SECONDS``) -> ``teardown`` (always; drops only the database
the drill created). Evidence: ``drill_runs`` in the catalog and ``drill-<id>.json``/``.md``
beside the backup. A failed drill fails its ``checks`` (or ``restore``) task and alerts.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable
from dateutil.relativedelta import relativedelta

from amprenta_backup.defaults import dag_kwargs
from amprenta_backup.operators.drill import drill_target
from amprenta_backup.operators.targets import ListBackupTargetsOperator

with DAG(
    dag_id="monthly_restore_drill",
    description="restore a backup into a scratch database, check its data, measure the RTO",
    schedule=CronTriggerTimetable("0 3 1 * *", timezone="UTC", interval=relativedelta(months=1)),
    doc_md=__doc__,
    **dag_kwargs(),
):
    targets = ListBackupTargetsOperator(task_id="list_targets", retries=0)
    drill_target.expand(target=targets.output)
