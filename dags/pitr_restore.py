"""pitr_restore: restore the archived cluster to a point in time on the worker host (manual).

### How to run it
Give a target time (ISO 8601 with a zone, e.g. `2026-11-24T05:10:23+00:00`) or `latest`,
and a new or empty data directory and a port on the worker.

### What it does
`plan` picks the newest base backup that ended before the target (or the one given);
`restore` fetches and checks it (sha256, pg_verifybackup), replays archived WAL up to the
target, and starts the server (127.0.0.1 only, `archive_mode = off`) and promotes it. Its
XCom holds the last replayed commit, the achieved RPO and the RTO. Nothing existing is
overwritten, so no approval step is needed. `replay_plan` then lists the runs of the
cluster's writer DAGs that ran after that point: what putting the restored server in place of
the source would take away ("N runs to redo", in the log and the catalog's `replay_plans`).
`plan` also names the DAGs that write to the
archived cluster's database (log and XCom `pipelines`); with `pause_writers` on they are
paused (`pause_writers`, after waiting for their running tasks) while it restores, and
`resume_writers` (a teardown) resumes exactly the ones it paused, also when it fails.

### When it fails
A missing WAL segment or a damaged base backup fails the task, naming it, with one alert; the
data directory is left for inspection.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from amprenta_backup.defaults import dag_kwargs, pause_writers_param, server_tools_args
from amprenta_backup.operators.pitr import PitrPlanOperator, PitrRestoreOperator
from amprenta_backup.operators.quiesce import quiesce_around
from amprenta_backup.operators.replay import PitrReplayPlanOperator

with DAG(
    dag_id="pitr_restore",
    description="point-in-time restore of BACKUP_WAL_TARGET into a new data directory",
    schedule=None,
    doc_md=__doc__,
    params={
        "target_time": Param(
            "latest", type="string", minLength=1, title="Restore to",
            description="ISO 8601 time with a zone (e.g. 2026-11-24T05:10:23+00:00), or "
                        "latest for the end of the archived WAL."),
        "data_directory": Param(  # required: no null in its type, so the form asks for it
            None, type="string", pattern="^/", title="Data directory",
            description="A new or empty directory on the worker host (an absolute path); "
                        "nothing in it is overwritten."),
        "port": Param(5433, type="integer", minimum=1024, maximum=65535, title="Port",
                      description="Port of the restored server on the worker (127.0.0.1 "
                                  "only)."),
        "backup_id": Param(None, type=["null", "string"], title="Base backup id",
                           description="A base backup id; empty picks the newest one that "
                                       "ended before the target time."),
        "pause_writers": pause_writers_param("the archived cluster"),
    },
    **dag_kwargs("pitr", "restore", default_args=server_tools_args()),
):
    arguments = {"target_time": "{{ params.target_time }}",
                 "data_directory": "{{ params.data_directory }}", "port": "{{ params.port }}"}
    plan = PitrPlanOperator(task_id="plan", retries=0, pause_writers="{{ params.pause_writers }}",
                            backup_id="{{ params.backup_id or '' }}", **arguments)
    restore = PitrRestoreOperator(task_id="restore", retries=0,
                                  backup_id="{{ ti.xcom_pull(task_ids='plan')['backup_id'] }}",
                                  **arguments)
    plan >> restore >> PitrReplayPlanOperator(task_id="replay_plan", kind="pitr_restore")
    quiesce_around(plan, restore, enabled="{{ params.pause_writers }}",
                   plan_key="return_value")
