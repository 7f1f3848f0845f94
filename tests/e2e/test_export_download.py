"""GET /api/v1/backup/export/{id} through the real api-server of the e2e deployment: an
authenticated caller streams the ZIP the catalog recorded; others get no byte of it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.settings.project import ProjectSettings
from amprenta_backup.web.app import URL_PREFIX
from tests.e2e.conftest import E2ESetup
from tests.integration.conftest import conninfo
from tests.integration.export.conftest import PROJECTS, make_project_db
from tests.support.airflow_deployment import AirflowDeployment


@pytest.fixture(scope="module")
def export(e2e: E2ESetup, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Project A exported into the deployment's bucket and catalog."""
    e2e.cluster.drop_database("e2e_projects")
    make_project_db(e2e.cluster, "e2e_projects", tmp_path_factory.mktemp("files"))

    def resolve(conn_id: str, database: str | None) -> PgConnInfo:
        return conninfo(e2e.cluster, database or "e2e_projects")

    engine = BackupEngine(config=BackupConfig(targets=()), storage=e2e.storage,
                          catalog=e2e.catalog, resolve=resolve)
    engine.project_settings = ProjectSettings(root="app.projects.id", source="projects")
    return engine.create_project_export(project_ids=[PROJECTS["A"]], include_files=False)


def test_an_export_downloads_whole_with_its_sha256_and_only_with_a_token(
        deployment: AirflowDeployment, e2e: E2ESetup, export: dict[str, object],
        tmp_path: Path) -> None:
    path = f"{URL_PREFIX}/export/{export['export_id']}"
    digest, out = hashlib.sha256(), tmp_path / "download.zip"
    with deployment.client.stream("GET", path) as answer, out.open("wb") as handle:
        assert answer.status_code == 200
        for chunk in answer.iter_bytes():
            digest.update(chunk)
            handle.write(chunk)
    assert answer.headers["X-Checksum-SHA256"] == export["sha256"] == digest.hexdigest()
    assert out.stat().st_size == export["size_bytes"]
    assert answer.headers["content-type"] == "application/zip"
    listed = deployment.api("GET", f"{URL_PREFIX}/exports")["exports"]
    assert [e["export_id"] for e in listed] == [export["export_id"]]

    missing = deployment.client.get(f"{URL_PREFIX}/export/20260101T000000Z-00000000")
    assert missing.status_code == 404 and "export list" in missing.text
    url = f"{deployment.base_url}{path}"
    anonymous = httpx.get(url, timeout=30)
    forged = httpx.get(url, timeout=30, headers={"Authorization": "Bearer not-a-token"})
    assert (anonymous.status_code, forged.status_code) == (401, 403)
    for refused in (anonymous, forged):
        assert b"PK" not in refused.content and "X-Checksum-SHA256" not in refused.headers
