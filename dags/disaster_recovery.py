"""disaster_recovery: the whole service onto a new, empty server, from storage alone.

### How to run it
Manual runs only: fill in the trigger form with the Airflow connection of the new server.
`plan` reads the manifests in storage and the new server and logs what will be restored
where (`dry_run` stops there).

### What it does
`recover` rebuilds the catalog from the manifests (into a new catalog database on the new
server when the configured one is unreachable), then restores each target's newest VERIFIED
(else COMPLETED) backup, or the newest before the given time, into a database of its own
name, several at once, and checks each as the restore drill does (rows against the manifest,
foreign keys, CHECK constraints, sequences). The report (per database: backup, rows,
seconds; the whole RTO) is written beside the backups and into the catalog's
`recovery_runs`.

### Approval
A server that already holds databases is written to only after an explicit Approve of
`approve_nonempty` (by the users in `BACKUP_APPROVERS` when set); the alert channels are told
when it starts waiting. A database that exists is never overwritten.

### The DAGs that write to the databases
`plan` names the DAGs that write to each recovered database (on its old server: Assets,
`writes:` tags, `BACKUP_WRITERS`), in its log, XCom and the approval. With `pause_writers`
on, `pause_writers` pauses them before `recover` writes and waits for their running tasks,
and `resume_writers` (a teardown) resumes exactly the ones it paused, also when it fails.

### When it fails
Any mismatch fails the run with one alert; databases already restored stay for inspection.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from amprenta_backup.core.recovery.plan import DEFAULT_CATALOG_DATABASE, MAX_PARALLEL
from amprenta_backup.defaults import dry_run_param, manual_dag_kwargs, pause_writers_param
from amprenta_backup.operators.approval import approval_gate
from amprenta_backup.operators.quiesce import quiesce_around
from amprenta_backup.operators.recovery import RecoverOperator, RecoveryPlanOperator

with DAG(
    dag_id="disaster_recovery",
    description="Recover every target onto a new server from storage (manual runs; a "
                "server that holds databases waits for an approval)",
    doc_md=__doc__,
    **manual_dag_kwargs("restore"),
    params={
        "server_conn_id": Param(  # required: no null in its type, so the form asks for it
            None, type="string", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$",
            title="New server connection",
            description="The Airflow Postgres connection id of the new server (its login "
                        "needs CREATEDB, ideally a superuser, for roles and owners)."),
        "targets": Param(
            [], type="array", items={"type": "string"}, title="Only these targets",
            description="Backup targets to recover (one per line, e.g. pg_main.analytics); "
                        "empty recovers every target that has a backup in storage."),
        "before": Param(
            None, type=["null", "string"], format="date-time", title="Newest before",
            description="Recover each target's newest backup started before this time "
                        "(with its zone); empty: the newest. Verified backups come first."),
        "parallel": Param(
            2, type="integer", minimum=1, maximum=MAX_PARALLEL, title="Databases at once",
            description="Databases restored at the same time (fewer if the server has few "
                        "free connections)."),
        "catalog_database": Param(
            DEFAULT_CATALOG_DATABASE, type="string", minLength=1, maxLength=63,
            title="New catalog database",
            description="Made on the new server when the configured catalog cannot be "
                        "reached at all (BACKUP_CATALOG_CONN_ID); point that at it afterwards."),
        "pause_writers": pause_writers_param("the recovered databases (on their old server)"),
        "dry_run": dry_run_param("which backup goes where, sizes"),
    },
) as dag:
    request = {key: dag.param(key) for key in (
        "server_conn_id", "targets", "before", "parallel", "catalog_database", "dry_run")}
    plan = RecoveryPlanOperator(task_id="plan", request=request, recover_task_id="pause_writers",
                                pause_writers=dag.param("pause_writers"))
    recover = RecoverOperator(task_id="recover", request=request)
    approve = approval_gate(
        plan, recover, task_id="approve_nonempty",
        subject="Recover onto {{ params.server_conn_id }}, which already holds databases?",
        backup_id="{{ ti.xcom_pull(task_ids='plan', key='plan')['databases'] "
                  "| map(attribute='backup_id') | join(', ') }}",
        target="{{ ti.xcom_pull(task_ids='plan', key='plan')['server'] }} (connection "
               "{{ params.server_conn_id }})",
        body="{% set p = ti.xcom_pull(task_ids='plan', key='plan') %}{% if p %}"
             "The server {{ p.server }} already holds **{{ p.existing_databases | join(', ') }}**"
             " (they are not touched). Approving creates these databases on it:\n\n"
             "{% for d in p.databases %}- {{ d.database }} from backup {{ d.backup_id }} of "
             "{{ d.target }} ({{ d.rows }} rows)\n{% endfor %}"
             "{% for line in p.pipelines.lines %}\n**{{ line }}**\n{% endfor %}{% endif %}",
    )
    quiesce_around([plan, approve], recover, enabled=dag.param("pause_writers"))
