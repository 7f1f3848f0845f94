"""project_export: export projects as one ZIP (rows, DDL, files, manifest) into backup storage.

### How to run it
Manual runs only: fill in the project ids (values of the root key). The project is
`BACKUP_PROJECT_ROOT` (`schema.table.column`) or `BACKUP_PROJECT_SPEC_FILE`.

### What it does
Reads, in one snapshot, the root rows whose key is one of the ids, every row that depends on
them (children, link rows) and every row those reference (lookups), and streams them with
`COPY` into one ZIP in backup storage, with the tables' DDL, the files the rows name
(`BACKUP_PROJECT_FILE_COLUMNS`) and a manifest of sha256 checksums.

### What you get
An `exports` row in the catalog (id, status, rows, size, sha256, this run). Download it with
`amprenta-backup export download ID` or `GET /api/v1/backup/export/ID`; import it with the
`project_import` DAG or `scripts/import_project.py`.

### When it fails
The export is recorded failed with the error; no ZIP is left under its id. One alert names
the run and the error.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from amprenta_backup.defaults import manual_dag_kwargs
from amprenta_backup.operators.export import ProjectExportOperator

with DAG(
    dag_id="project_export",
    description="Export projects as one ZIP into backup storage (manual runs)",
    doc_md=__doc__,
    **manual_dag_kwargs("backup"),
    params={
        "project_ids": Param(
            [], type="array", items={"type": "string", "minLength": 1}, minItems=1,
            title="Project ids", description="Values of the root key (BACKUP_PROJECT_ROOT), "
            "one per line."),
        "include_data": Param(True, type="boolean", title="Include the rows",
                              description="Off: only the DDL and the row counts."),
        "include_files": Param(True, type="boolean", title="Include the files",
                               description="Copy in the files the rows name "
                               "(BACKUP_PROJECT_FILE_COLUMNS)."),
    },
) as dag:
    ProjectExportOperator(task_id="export", project_ids=dag.param("project_ids"),
                          include_data=dag.param("include_data"),
                          include_files=dag.param("include_files"))
