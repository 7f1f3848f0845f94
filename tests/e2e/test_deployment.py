"""daily_backup in a real Airflow deployment, triggered and followed through the REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from amprenta_backup.core import layout
from amprenta_backup.core.models import Manifest, Status
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.e2e.conftest import BUCKET, SOURCE_DB, TARGET, E2ESetup
from tests.integration.conftest import conninfo
from tests.support.airflow_deployment import AirflowDeployment
from tests.support.airflow_env import REPO
from tests.support.factories import restore_stored_dump


def test_components_are_healthy_and_every_dag_file_imports(
    deployment: AirflowDeployment,
) -> None:
    health = httpx.get(f"{deployment.base_url}/api/v2/monitor/health", timeout=10).json()
    assert {key: health[key]["status"] for key in
            ("metadatabase", "scheduler", "dag_processor", "triggerer")} == dict.fromkeys(
        ("metadatabase", "scheduler", "dag_processor", "triggerer"), "healthy")
    files = {path.name for path in (REPO / "dags").glob("*.py")}
    deployment.wait_parsed(files)
    assert deployment.import_errors() == []
    dags = [d for d in deployment.api("GET", "/api/v2/dags", params={"limit": 1000})["dags"]
            if d["bundle_name"] == "dags-folder"]  # not the pipeline_dags/ bundle
    assert {Path(d["fileloc"]).name for d in dags} == files
    assert {d["dag_id"] for d in dags} >= {"daily_backup", "restore", "weekly_verify",
                                           "weekly_cleanup", "daily_health"}
    # the API refuses callers without a token
    anonymous = httpx.get(f"{deployment.base_url}/api/v2/dags", timeout=10)
    assert anonymous.status_code == 401


def test_daily_backup_triggered_through_the_api_lands_in_storage_and_catalog(
    deployment: AirflowDeployment, e2e: E2ESetup, daily_backup_run: dict[str, Any],
) -> None:
    run_id = daily_backup_run["dag_run_id"]
    assert daily_backup_run["run_type"] == "manual"
    assert daily_backup_run["state"] == "success", daily_backup_run["tasks"]
    assert daily_backup_run["tasks"] == {"list_targets": "success", "backup[0]": "success",
                                         "copy[0]": "skipped"}  # no copy storage set

    (record,) = [r for r in e2e.catalog.find(target=TARGET) if r.run.run_id == run_id]
    assert record.status == Status.COMPLETED
    assert record.run.dag_id == "daily_backup" and record.run.run_id == run_id
    folder = layout.backup_folder("database", TARGET, record.backup_id)
    assert record.location == f"s3://{BUCKET}/{folder}"
    manifest = Manifest.from_json(e2e.storage.get_bytes(layout.manifest_key(folder)))
    assert manifest.sha256 == record.sha256 and manifest.run.run_id == run_id
    assert manifest.table_counts and all(n >= 0 for n in manifest.table_counts.values())

    log = deployment.task_log("daily_backup", run_id, "backup", map_index=0)
    assert f"backup {record.backup_id} complete" in log
    assert e2e.cluster.password not in log
    leaked = [p.name for p in deployment.log_files() if e2e.cluster.password in p.read_text(
        errors="replace")]
    assert leaked == [], f"the database password was written to {leaked}"

    restored = "e2e_restored_daily"
    e2e.cluster.drop_database(restored)
    e2e.cluster.create_database(restored)
    try:
        restore_stored_dump(e2e.storage, manifest, conninfo(e2e.cluster, restored))
        assert_databases_equal(e2e.cluster, SOURCE_DB, e2e.cluster, restored)
    finally:
        e2e.cluster.drop_database(restored)
