"""pitr_drill: prove the RPO monthly. T is marked on the source between two rows, the cluster
is restored to T in a scratch cluster on the worker, the row before T must be there and the
row after T must not, and the achieved RPO and RTO go to the catalog's ``pitr_drills``. The
scratch cluster is always removed (a teardown task). Keep the three tasks on one worker
(one ``queue``) when workers are spread over several hosts.
"""

from __future__ import annotations

from airflow.sdk import DAG

from amprenta_backup.defaults import optional_dag_kwargs, server_tools_args
from amprenta_backup.operators.pitr_drill import (
    PitrDrillMarkOperator,
    PitrDrillRestoreOperator,
    PitrDrillTeardownOperator,
)

with DAG(
    dag_id="pitr_drill",
    description="restore BACKUP_WAL_TARGET to a marked time T in a scratch cluster; record "
                "RPO and RTO",
    schedule="0 4 2 * *",
    doc_md=__doc__,
    **optional_dag_kwargs(default_args=server_tools_args()),
):
    mark = PitrDrillMarkOperator(task_id="mark_source", retries=0)
    restore = PitrDrillRestoreOperator(task_id="restore_to_t", retries=0)
    teardown = PitrDrillTeardownOperator(task_id="remove_scratch", retries=1)
    mark >> restore >> teardown.as_teardown(setups=mark)
