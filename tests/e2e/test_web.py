"""The amprenta-backup plugin in the real deployment: registered, mounted, behind Airflow's auth."""

from __future__ import annotations

from typing import Any

import httpx

from amprenta_backup.web.app import URL_PREFIX
from tests.e2e.conftest import TARGET, E2ESetup
from tests.support.airflow_deployment import AirflowDeployment


def test_the_plugin_is_listed_with_its_app_and_its_backups_view(
    deployment: AirflowDeployment,
) -> None:
    plugins = deployment.api("GET", "/api/v2/plugins")["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == "amprenta_backup"]
    assert [(a["url_prefix"], a["name"]) for a in plugin["fastapi_apps"]] == [
        (URL_PREFIX, "amprenta-backup")]
    (view,) = plugin["external_views"]
    assert (view["name"], view["destination"], view["url_route"]) == ("Backups", "nav",
                                                                      "backups")
    assert "EntryPoint" in plugin["source"]  # the installed package's entry point
    errors = deployment.api("GET", "/api/v2/plugins/importErrors")["import_errors"]
    assert errors == []


def test_backups_json_lists_the_catalog_records_newest_first(
    deployment: AirflowDeployment, e2e: E2ESetup, daily_backup_run: dict[str, Any],
) -> None:
    answer = deployment.api("GET", f"{URL_PREFIX}/backups", params={"target": TARGET})
    expected = e2e.catalog.find(target=TARGET, limit=50)
    assert [b["backup_id"] for b in answer["backups"]] == [r.backup_id for r in expected]
    (mine,) = [b for b in answer["backups"] if b["run"]["run_id"] ==
               daily_backup_run["dag_run_id"]]
    record = e2e.catalog.get(mine["backup_id"])
    assert record is not None
    assert (mine["status"], mine["stored_bytes"], mine["sha256"]) == (
        str(record.status), record.stored_bytes, record.sha256)


def test_callers_without_a_valid_airflow_token_get_nothing(
    deployment: AirflowDeployment, daily_backup_run: dict[str, Any],
) -> None:
    url = f"{deployment.base_url}{URL_PREFIX}/backups"
    anonymous = httpx.get(url, timeout=10)
    assert anonymous.status_code == 401
    forged = httpx.get(url, timeout=10, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 403
    for answer in (anonymous, forged):
        assert "backups" not in answer.text and TARGET not in answer.text
