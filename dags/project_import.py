"""project_import: import a project export into a database, after an approval.

### How to run it
Manual runs only: fill in the export id (`amprenta-backup export list`), the database to
import into and what to do with conflicting rows. `dry_run` stops after the plan.

### What it does
`plan` imports the export in a transaction that is rolled back: every checksum verified, the
target schema checked (an empty database gets the export's DDL), the conflicts counted (rows
whose key the target holds with other content). Then a person answers `approve_import`, and
`import_project` loads the rows in one transaction in dependency order (all or nothing) and
moves the sequences past the keys loaded.

### What you get
The rows per table loaded, already there, skipped or remapped, in the task's log and XCom.

### When it fails
Nothing is written: an altered export, an incompatible schema or a conflict under `fail`
stops the plan; a failed load rolls back. One alert names the run and the error.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from amprenta_backup.defaults import DATABASE_NAME, dry_run_param, manual_dag_kwargs
from amprenta_backup.operators.approval import approval_gate
from amprenta_backup.operators.export import ProjectImportOperator, ProjectImportPlanOperator

with DAG(
    dag_id="project_import",
    description="Import a project export (manual runs; waits for an approval)",
    doc_md=__doc__,
    **manual_dag_kwargs("restore"),
    params={
        "export_id": Param(  # required: no null in its type, so the form asks for it
            None, type="string", pattern=r"^\d{8}T\d{6}Z-[0-9a-f]{8}$", title="Export id",
            description="An id from `amprenta-backup export list` (like "
                        "20261124T010000Z-1a2b3c4d)."),
        "target_conn_id": Param(
            None, type=["null", "string"], title="Import onto connection",
            description="Airflow Postgres connection of the server to import into. Default: "
                        "the project's (BACKUP_PROJECT_SOURCE)."),
        "target_database": Param(  # required, as the restore form's
            None, type="string", minLength=1, maxLength=63, pattern=DATABASE_NAME,
            title="Import into database",
            description="The database to import into (1-63 characters, no leading or "
                        "trailing space, no control characters)."),
        "on_conflict": Param(
            "fail", type="string", enum=["fail", "skip", "remap"], title="On conflict",
            description="Rows whose key the target holds with other content: fail, skip "
                        "(keep the target's), remap (new keys, references rewritten)."),
        "dry_run": dry_run_param("the rows per table and the conflicts, rolled back"),
    },
) as dag:
    request = {"export_id": dag.param("export_id"),
               "target_conn_id": dag.param("target_conn_id"),
               "target_database": dag.param("target_database"),
               "on_conflict": dag.param("on_conflict"), "dry_run": dag.param("dry_run")}
    plan = ProjectImportPlanOperator(task_id="plan", request=request)
    load = ProjectImportOperator(task_id="import_project", request=request)
    approval_gate(
        plan, load, task_id="approve_import",
        subject="Import export {{ params.export_id }} into {{ params.target_database }}?",
        backup_id="export {{ params.export_id }}",
        target="database '{{ params.target_database }}'",
        body="{% set p = ti.xcom_pull(task_ids='plan', key='plan') %}{% if p %}"
             "Export {{ p.export_id }} into {{ p.database }} (policy {{ p.policy }}): "
             "{{ p.rows_loaded }} rows.\n\n{% for t in p.tables %}- {{ t.table }}: "
             "{{ t.loaded }} rows{% if t.conflicts %}, {{ t.conflicts }} conflicting"
             "{% endif %}\n{% endfor %}{% endif %}",
    )
