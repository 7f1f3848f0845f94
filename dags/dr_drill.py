"""dr_drill: rehearse the whole-service disaster recovery every month (05:00 UTC on the 3rd).

### What it does
`start_server` makes a throwaway empty cluster on the worker (a new data directory, the
source's PostgreSQL major, or the next major with *Upgrade rehearsal*: proof that the data
also survives the upgrade being planned), or uses the server of `BACKUP_DR_DRILL_CONN_ID`.
`recover` does what `disaster_recovery` does onto it: rebuilds the catalog from the manifests
(into a catalog database of its own there; the catalog in use is only read), restores each
target's newest verified (else completed) backup, or the backups given in the trigger form,
and checks each database as the restore drill does. `remove_server` removes the scratch
cluster (or drops what the drill created) whatever happened.

### Evidence
The measured whole-service RTO goes to the catalog's `drill_runs` and `recovery_runs` and a
report beside the backups.

### When it fails
A database that does not match its manifest fails `recover`, with one alert naming it. The
tasks run on `BACKUP_SERVER_TASKS_QUEUE` when it is set; keep them on one worker when workers
are spread out. Paused when Airflow first sees it: unpause it once the worker can start a
server.
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
        "backup_ids": Param(
            [], type="array", title="Backups to rehearse with",
            items={"type": "string", "pattern": r"^\d{8}T\d{6}Z-[0-9a-f]{8}$"},
            description="Ids from `amprenta-backup list`, one per target (one per line): "
                        "each is restored instead of its target's newest backup; the other "
                        "targets get their newest. Empty: every target's newest."),
    },
    **optional_dag_kwargs("drill", "restore", default_args=server_tools_args()),
) as dag:
    start = DrDrillServerOperator(task_id="start_server", next_major="{{ params.next_major }}",
                                  retries=0)
    recover = DrDrillRecoverOperator(task_id="recover", retries=0)
    teardown = DrDrillTeardownOperator(task_id="remove_server", retries=1)
    start >> recover >> teardown.as_teardown(setups=start)
