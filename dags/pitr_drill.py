"""pitr_drill: prove the recovery point objective every month (04:00 UTC on the 2nd).

### What it does
`mark_source` marks a time T on `BACKUP_WAL_TARGET` between two rows; `restore_to_t`
restores the cluster to T into a scratch cluster on the worker: the row before T must be
there and the row after T must not. The achieved RPO and RTO go to the catalog's
`pitr_drills`; `replay_plan` lists the writer DAG runs after T that a real restore to T
would take away ("N runs to redo"). `remove_scratch` (a teardown task) always removes the
scratch cluster.

### Settings
`BACKUP_WAL_TARGET`, `BACKUP_PITR_CONN_ID`, `BACKUP_PITR_SCRATCH_DIR`, `BACKUP_WAL_RPO_SECONDS`.
The tasks run on `BACKUP_SERVER_TASKS_QUEUE` when it is set (workers with `pg_ctl`);
keep them on one worker when workers are spread over several hosts. Paused when Airflow
first sees it: unpause it once point-in-time recovery is set up.

### When it fails
A drill that misses T, or a base backup or WAL segment that cannot be read, fails
`restore_to_t` and sends one alert; the scratch cluster is removed anyway.
"""

from __future__ import annotations

from airflow.sdk import DAG

from amprenta_backup.defaults import optional_dag_kwargs, server_tools_args
from amprenta_backup.operators.pitr_drill import (
    PitrDrillMarkOperator,
    PitrDrillRestoreOperator,
    PitrDrillTeardownOperator,
)
from amprenta_backup.operators.replay import PitrReplayPlanOperator

with DAG(
    dag_id="pitr_drill",
    description="restore BACKUP_WAL_TARGET to a marked time T in a scratch cluster; record "
                "RPO and RTO",
    schedule="0 4 2 * *",
    doc_md=__doc__,
    **optional_dag_kwargs("pitr", "drill", default_args=server_tools_args()),
):
    mark = PitrDrillMarkOperator(task_id="mark_source", retries=0)
    restore = PitrDrillRestoreOperator(task_id="restore_to_t", retries=0)
    teardown = PitrDrillTeardownOperator(task_id="remove_scratch", retries=1)
    mark >> restore >> teardown.as_teardown(setups=mark)
    restore >> PitrReplayPlanOperator(task_id="replay_plan", kind="pitr_drill",
                                      restore_task_id="restore_to_t")
