"""restore: restore a backup into a new database, or replace a database after an approval.

### How to run it
Manual runs only: fill in the trigger form (*Restore into database* is required). `plan` checks
everything and logs what would be restored where (`dry_run` stops there); `restore` carries
out that plan, so `latest` is resolved once, before the approval.

### What it does
`new_database` restores at once and refuses a database that exists. `replace` needs the
database name typed again in *Confirm* and an explicit Approve of `approve_replace` (by the
users in `BACKUP_APPROVERS` when set; the alert channels are told when it starts waiting,
naming the backup, the target and the link), then restores into a temporary database and
swaps it in only once its row counts match. With `pause_writers` (on by default) a
`replace` first pauses the DAGs that write to the database (`pause_writers`: the approval
names them and which of their tasks run), waits for their running tasks, and
`resume_writers` (a teardown) resumes exactly the ones it paused, also when the restore
fails; a DAG a person had paused stays paused.

### What you get
After a `replace`, `replay_plan` lists the runs of the database's writer DAGs that ran after
the backup was taken (their writes are gone): "N runs to redo", in the log, the catalog's
`replay_plans` and XCom `replay`. With *replay* on, `approve_replay` asks to re-run exactly
those runs, and `replay` clears them through the REST API.

The dump's sha256 is checked before the restore starts; the `restore` task logs its
duration (the achieved RTO) once and the restored row counts against the backup's manifest.

### When it fails
Nothing is overwritten: a failed `replace` leaves the database as it was. One alert names the
run and the error.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from amprenta_backup.defaults import DATABASE_NAME, dry_run_param, manual_dag_kwargs
from amprenta_backup.operators.approval import approval_gate
from amprenta_backup.operators.quiesce import quiesce_around
from amprenta_backup.operators.replay import ReplayOperator, ReplayPlanOperator
from amprenta_backup.operators.restore import RestoreOperator, RestorePlanOperator

with DAG(
    dag_id="restore",
    description="Restore a backup (manual runs; replace waits for an approval)",
    doc_md=__doc__,
    **manual_dag_kwargs("restore"),
    params={
        "backup_id": Param(
            "latest", type="string", title="Backup id",
            pattern=r"^(latest|\d{8}T\d{6}Z-[0-9a-f]{8})$",
            description="An id from `amprenta-backup list` (like 20261124T010000Z-1a2b3c4d), "
                        "or latest for the newest restorable backup of the target below."),
        # "target" is a backup target (what is backed up), as in BACKUP_TARGETS and the CLI's
        # --target/--from; where a restore writes is "restore onto/into" (issue 13 point 1)
        "target": Param(
            None, type=["null", "string"], title="Backup target",
            description="For latest: whose newest backup it means, a BACKUP_TARGETS name such "
                        "as pg_main or pg_main.analytics. Default: the connection restored "
                        "onto."),
        "target_conn_id": Param(
            None, type=["null", "string"], title="Restore onto connection",
            description="Airflow Postgres connection of the server to restore onto. Default: "
                        "the connection the backup was taken through."),
        "target_database": Param(  # required: no null in its type, so the form asks for it
            None, type="string", minLength=1, maxLength=63, pattern=DATABASE_NAME,
            title="Restore into database",
            description="The database to restore into (1-63 characters, no leading or "
                        "trailing space, no control characters)."),
        "mode": Param(
            "new_database", type="string", enum=["new_database", "replace"], title="Mode",
            values_display={"new_database": "new_database: create it, refuse if it exists",
                            "replace": "replace: drop and re-create it (needs approval)"},
            description="new_database creates the database and refuses one that exists; "
                        "replace restores into a temporary database and swaps it in, "
                        "after confirm and an approval (no schema/table filters)."),
        "confirm": Param(
            None, type=["null", "string"], title="Confirm",
            description="For replace: type the name of the database restored into again."),
        "schemas": Param(
            None, type=["null", "array"], items={"type": "string"}, title="Only these schemas",
            description="Restore only these schemas (one per line); empty restores all."),
        "tables": Param(
            None, type=["null", "array"], items={"type": "string"}, title="Only these tables",
            description="Restore only these tables, names without schema (one per line)."),
        "jobs": Param(
            1, type="integer", minimum=1, maximum=32, title="Parallel jobs",
            description="pg_restore jobs. Above 1 the dump is first downloaded to a "
                        "temporary file on the worker (needs its decompressed size free)."),
        "no_owner": Param(
            False, type="boolean", title="Skip ownership and privileges",
            description="For a server without the source's roles (--no-owner "
                        "--no-privileges)."),
        "from_copy": Param(
            False, type="boolean", title="From the second copy",
            description="Read the backup from the second copy (BACKUP_COPY_*) instead of the "
                        "primary storage. Off, a primary that cannot be read, or whose backup "
                        "is damaged, falls back to the copy by itself (the log says so)."),
        "replay": Param(
            False, type="boolean", title="Offer to re-run the lost DAG runs (replace only)",
            description="After a replace, re-run the runs of the database's writer DAGs that "
                        "the backup does not hold (they ran after it was taken), after an "
                        "approval of approve_replay. Off: replay_plan only lists them."),
        "pause_writers": Param(
            True, type="boolean", title="Pause the writer DAGs (replace only)",
            description="For replace: pause the DAGs that write to the database before the "
                        "restore, wait for their running tasks (BACKUP_QUIESCE_WAIT_SECONDS), "
                        "and resume the ones it paused afterwards, also if the restore fails. "
                        "A DAG paused already stays paused."),
        "dry_run": dry_run_param("what would be restored where, sizes"),
    },
) as dag:
    request = {
        "backup_id": dag.param("backup_id"), "source_target": dag.param("target"),
        "target_conn_id": dag.param("target_conn_id"), "database": dag.param("target_database"),
        "mode": dag.param("mode"), "confirm": dag.param("confirm"),
        "schemas": dag.param("schemas"), "tables": dag.param("tables"),
        "jobs": dag.param("jobs"), "no_owner": dag.param("no_owner"),
        "dry_run": dag.param("dry_run"),
    }
    plan = RestorePlanOperator(task_id="plan", request=request,
                               from_copy=dag.param("from_copy"),
                               pause_writers=dag.param("pause_writers"))
    restore = RestoreOperator(task_id="restore", request=request,
                              from_copy=dag.param("from_copy"))
    approve = approval_gate(
        plan, restore, task_id="approve_replace",
        subject="Replace database {{ params.target_database }} with backup "
                "{{ ti.xcom_pull(task_ids='plan', key='plan')['backup_id'] }}?",
        backup_id="{{ ti.xcom_pull(task_ids='plan', key='plan')['backup_id'] }}",
        target="database '{{ params.target_database }}' on "
               "{{ ti.xcom_pull(task_ids='plan', key='plan')['target_server'] }}",
        body="Approving **drops database {{ params.target_database }}** (its current data is "
             "lost) and restores the backup into it.\n\n"
             "{% set p = ti.xcom_pull(task_ids='plan', key='plan') %}{% if p %}"
             "Backup {{ p.backup_id }} of {{ p.source_target }}: {{ p.rows }} rows in "
             "{{ p.table_counts | length }} tables, into {{ p.target_server }}.\n\n"
             "{% for step in p.steps %}{{ loop.index }}. {{ step }}\n{% endfor %}"
             "{% for line in p.pipelines.lines %}\n**{{ line }}**\n{% endfor %}"
             "{% set r = ti.xcom_pull(task_ids='plan', key='replay') %}{% if r %}\n"
             "**{{ r.headline }}**: approving takes away what they wrote (replay_plan lists "
             "them after the restore){% endif %}{% endif %}",
    )
    replay_plan = ReplayPlanOperator(task_id="replay_plan", replay=dag.param("replay"))
    restore >> replay_plan
    approval_gate(
        replay_plan, ReplayOperator(task_id="replay"), task_id="approve_replay",
        subject="Re-run {{ ti.xcom_pull(task_ids='replay_plan', key='replay')['count'] }} DAG "
                "run(s) that wrote to {{ params.target_database }} after the backup?",
        backup_id="{{ ti.xcom_pull(task_ids='plan', key='plan')['backup_id'] }}",
        target="database '{{ params.target_database }}'",
        body="{% set r = ti.xcom_pull(task_ids='replay_plan', key='replay') %}{% if r %}"
             "**{{ r.headline }}**\n\nApproving clears each run below, so Airflow runs it "
             "again with its own data interval and conf:\n\n"
             "{% for run in r.runs %}{{ loop.index }}. {{ run.dag_id }} {{ run.run_id }} "
             "({{ run.reason }})\n{% endfor %}{% endif %}",
    )
    quiesce_around(approve, restore, enabled=dag.param("pause_writers"))
