"""dr_drill: rehearse the whole-service disaster recovery every month.

``start_server`` makes a throwaway empty cluster on the worker (a new data directory, the
source's PostgreSQL major, or the next major with ``next_major``: an upgrade rehearsal that
proves the data also survives the upgrade being planned), or uses the server of
``BACKUP_DR_DRILL_CONN_ID``. ``recover`` does what ``disaster_recovery`` does onto it:
rebuilds the catalog from the manifests (into a catalog database of its own there; the
catalog in use is only read), restores each target's newest verified (else completed) backup
and checks each database as the restore drill does. The measured whole-service RTO goes to
the catalog's ``drill_runs`` and ``recovery_runs`` and a report beside the backups.
``remove_server`` removes the scratch cluster (or drops what the drill created) whatever
happened. Keep the three tasks on one worker (one ``queue``) when workers are spread out.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from amprenta_backup.defaults import optional_dag_kwargs, server_tools_args
from amprenta_backup.operators.dr_drill import (
    DrDrillRecoverOperator,
    DrDrillServerOperator,
    DrDrillTeardownOperator,
)

with DAG(
    dag_id="dr_drill",
    description="recover every target into a throwaway empty cluster; record the "
                "whole-service RTO",
    schedule="0 5 3 * *",
    doc_md=__doc__,
    params={
        "next_major": Param(
            None, type=["null", "boolean"], title="Upgrade rehearsal",
            description="Make the scratch cluster of the next PostgreSQL major. Empty: "
                        "BACKUP_DR_DRILL_NEXT_MAJOR (default off)."),
    },
    **optional_dag_kwargs(default_args=server_tools_args()),
) as dag:
    start = DrDrillServerOperator(task_id="start_server", next_major="{{ params.next_major }}",
                                  retries=0)
    recover = DrDrillRecoverOperator(task_id="recover", retries=0)
    teardown = DrDrillTeardownOperator(task_id="remove_server", retries=1)
    start >> recover >> teardown.as_teardown(setups=start)
