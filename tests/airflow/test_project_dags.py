"""project_export and project_import through dag.test(): a real project database, local
storage, the catalog, and the import's approval answered through Airflow's REST API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core.export.store import ExportRecords
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.airflow.conftest import manual_gated_dag, postgres_conn_json
from tests.airflow.test_restore_dag import _Approver, _states
from tests.integration.conftest import conninfo
from tests.integration.export.conftest import PROJECTS, make_project_db
from tests.integration.export.oracle import expected_rows, table_rows


@pytest.fixture
def project_env(backup_env: dict[str, Any], pg_cluster: ClusterBase, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    name = f"af_projects_{backup_env['catalog_db'][-8:]}"
    source = make_project_db(pg_cluster, name, tmp_path / "files")
    monkeypatch.setenv("AIRFLOW_CONN_PROJECTS", postgres_conn_json(pg_cluster, name))
    monkeypatch.setenv("BACKUP_PROJECT_ROOT", "app.projects.id")
    monkeypatch.setenv("BACKUP_PROJECT_SOURCE", "projects")
    monkeypatch.setenv("BACKUP_PROJECT_FILE_COLUMNS", "app.documents.path")
    monkeypatch.setenv("BACKUP_PROJECT_FILES_ROOT", str(tmp_path / "files"))
    target = f"af_import_{backup_env['catalog_db'][-8:]}"
    pg_cluster.create_database(target)
    yield {**backup_env, "source": source, "target": target}
    pg_cluster.drop_database(name)
    pg_cluster.drop_database(target)


def test_import_is_manual_with_a_typed_form_and_an_approval_before_it_writes(
        airflow_db: None) -> None:
    dag = manual_gated_dag("project_import", "approve_import", "import_project")
    assert dag.params.get_param("on_conflict").schema["enum"] == ["fail", "skip", "remap"]
    from airflow.dag_processing.dagbag import DagBag

    from tests.support.airflow_env import REPO

    export = DagBag(dag_folder=str(REPO / "dags")).dags["project_export"]
    assert {str(t.value) for t in export.allowed_run_types} == {"manual"}
    assert export.params.get_param("project_ids").schema["minItems"] == 1


def test_export_dag_then_import_dag_after_approve(
        run_dag: Callable[..., Any], project_env: dict[str, Any], pg_cluster: ClusterBase,
        monkeypatch: pytest.MonkeyPatch) -> None:
    exported = run_dag("project_export", run_conf={"project_ids": [PROJECTS["A"]]})
    assert _states(exported) == {"export": "success"}
    [record] = ExportRecords(project_env["catalog"]).find()
    assert (record.status, record.run.dag_id, record.run.run_id) == (
        "completed", "project_export", exported.run_id)

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    approver = _Approver("Approve", dag_id="project_import", task_id="approve_import")
    approver.start()
    imported = run_dag("project_import", run_conf={
        "export_id": record.export_id, "target_conn_id": "projects",
        "target_database": project_env["target"]})
    approver.join(timeout=30)
    assert approver.error is None and approver.status == 200
    assert _states(imported) == {"plan": "success", "approve_import": "success",
                                 "import_project": "success"}
    target = conninfo(pg_cluster, project_env["target"])
    assert table_rows(target) == expected_rows(project_env["source"], PROJECTS["A"])
    assert json.dumps(record.to_dict())  # JSON-able for the API
