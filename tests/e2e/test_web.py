"""The amprenta-backup plugin in the real deployment: registered, mounted, behind Airflow's auth."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from amprenta_backup.web.app import URL_PREFIX
from tests.e2e.conftest import OUTSIDER, TARGET, E2ESetup
from tests.e2e.web_catalog import BROKEN, WebCatalog
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


def test_a_logged_in_user_without_access_to_the_backup_dags_gets_403(
    deployment: AirflowDeployment, dashboard_catalog: WebCatalog,
) -> None:
    token = httpx.post(f"{deployment.base_url}/auth/token", timeout=30, json={
        "username": OUTSIDER, "password": deployment.password_of(OUTSIDER)})
    assert token.status_code == 201, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    with httpx.Client(base_url=deployment.base_url, headers=headers, timeout=30) as outsider:
        # logged in: Airflow answers what a viewer may read, and refuses the DAG itself
        assert outsider.get("/api/v2/pools").status_code == 200
        assert outsider.get("/api/v2/dags/daily_backup").status_code == 403
        for path in ("/overview", "/backups", "/metrics", "/dashboard"):
            answer = outsider.get(f"{URL_PREFIX}{path}")
            assert answer.status_code == 403, (path, answer.text)
            assert TARGET not in answer.text and BROKEN not in answer.text
            assert dashboard_catalog.failed_backup_id not in answer.text
        # the cookie the UI sends is checked the same way
        page = httpx.get(f"{deployment.base_url}{URL_PREFIX}/dashboard", timeout=30,
                         cookies={"_token": token.json()["access_token"]})
        assert page.status_code == 403 and TARGET not in page.text


def _catalog_rows(e2e: E2ESetup, sql: str, *params: Any) -> list[dict[str, Any]]:
    with e2e.catalog.cursor() as cur:
        cur.execute(sql.encode(), params)
        return list(cur.fetchall())


def test_overview_figures_match_the_catalog(
    deployment: AirflowDeployment, e2e: E2ESetup, dashboard_catalog: WebCatalog,
) -> None:
    answer = deployment.api("GET", f"{URL_PREFIX}/overview", params={"days": 30})
    targets = {t["target"]: t for t in answer["targets"]}
    assert set(targets) >= {TARGET, BROKEN}
    records = e2e.catalog.find(target=TARGET)
    good = [r for r in records if str(r.status) in ("completed", "verified")]
    source = targets[TARGET]
    assert source["last_backup"]["backup_id"] == records[0].backup_id
    assert source["last_success"]["backup_id"] == good[0].backup_id
    assert source["stored_bytes"] == sum(r.stored_bytes or 0 for r in good)
    assert source["failures_total"] == 0
    assert source["last_verify"]["backup_id"] == dashboard_catalog.verified.backup_id
    assert source["last_verify"]["ok"] is True
    drill = dashboard_catalog.drill
    assert source["last_drill"]["drill_id"] == drill.drill_id
    assert source["last_drill"]["rto_seconds"] == pytest.approx(drill.rto_seconds)
    assert source["last_drill"]["rto_objective_seconds"] == 600
    broken = targets[BROKEN]
    assert broken["last_backup"]["status"] == "failed" and broken["failures_total"] == 1

    first = answer["problems"][0]
    assert (first["kind"], first["target"], first["backup_id"]) == (
        "backup_failed", BROKEN, dashboard_catalog.failed_backup_id)
    assert first["run_id"] == dashboard_catalog.failed_run.run_id

    finished = _catalog_rows(e2e, "SELECT status FROM backup_records WHERE status <> 'running' "
                                  "AND created_at >= now() - interval '30 days'")
    rate = answer["success_rate"]
    assert rate["total"] == len(finished)
    assert rate["succeeded"] == sum(r["status"] in ("completed", "verified") for r in finished)
    assert answer["storage"]["total"][-1] == sum(
        r["size"] for r in _catalog_rows(e2e, "SELECT file_size_bytes AS size FROM "
                                              "backup_records WHERE status IN "
                                              "('completed', 'verified', 'corrupt')"))
    assert [p["backup_id"] for p in answer["trend"]] == [
        r["id"] for r in _catalog_rows(e2e, "SELECT id FROM backup_records WHERE status IN "
                                            "('completed', 'verified') ORDER BY started_at")]


def test_verifications_drills_health_and_metrics_json(
    deployment: AirflowDeployment, e2e: E2ESetup, dashboard_catalog: WebCatalog,
) -> None:
    verifications = deployment.api("GET", f"{URL_PREFIX}/verifications")["verifications"]
    # the verify run's row, and the passed drill's own (a drill reads the whole backup)
    [verify] = [v for v in verifications if v["run_id"] == "manual__web_verify"]
    assert verify["backup_id"] == dashboard_catalog.verified.backup_id and verify["ok"] is True
    assert {v["backup_id"] for v in verifications} >= {dashboard_catalog.drill.backup_id}
    drills = deployment.api("GET", f"{URL_PREFIX}/drills", params={"target": TARGET})["drills"]
    assert drills[0]["id"] == dashboard_catalog.drill.drill_id
    assert drills[0]["passed"] is dashboard_catalog.drill.passed
    health = deployment.api("GET", f"{URL_PREFIX}/health")
    saved = _catalog_rows(e2e, "SELECT name, status FROM health_checks WHERE run_id = %s",
                          "manual__web_health")
    assert sorted((c["name"], c["status"]) for c in health["checks"]) == sorted(
        (r["name"], r["status"]) for r in saved)
    rate = deployment.api("GET", f"{URL_PREFIX}/metrics/success-rate",
                          params={"target": BROKEN})
    assert (rate["total"], rate["failed"], rate["success_rate"]) == (1, 1, 0.0)
    trend = deployment.api("GET", f"{URL_PREFIX}/metrics/storage-trend")
    assert sum(d["total_size"] for d in trend) == sum(
        r["size"] for r in _catalog_rows(e2e, "SELECT file_size_bytes AS size FROM "
                                              "backup_records WHERE status IN "
                                              "('completed', 'verified')"))
    missing = deployment.client.get(f"{URL_PREFIX}/backups/20000101T000000Z-nothere")
    assert missing.status_code in (404, 422)


def test_prometheus_endpoint_parses_and_matches_the_catalog(
    deployment: AirflowDeployment, e2e: E2ESetup, dashboard_catalog: WebCatalog,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    answer = deployment.client.get(f"{URL_PREFIX}/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(
        "text/plain")
    samples = {(s.name, s.labels.get("target")): s.value
               for family in text_string_to_metric_families(answer.text)
               for s in family.samples}
    now = e2e.catalog.now()
    good = [r for r in e2e.catalog.find(target=TARGET)
            if str(r.status) in ("completed", "verified")]
    age = samples[("amprenta_backup_last_success_age_seconds", TARGET)]
    assert good[0].completed_at is not None
    expected_age = (now - good[0].completed_at).total_seconds()
    assert expected_age - 5 <= age <= expected_age + 60  # measured a moment before `now`
    assert samples[("amprenta_backup_stored_bytes", TARGET)] == sum(
        r.stored_bytes or 0 for r in good)
    assert samples[("amprenta_backup_last_drill_rto_seconds", TARGET)] == pytest.approx(
        dashboard_catalog.drill.rto_seconds)
    verified_at = _catalog_rows(e2e, "SELECT max(verified_at) AS at FROM backup_verifications "
                                     "WHERE target = %s", TARGET)[0]["at"]
    verify_age = samples[("amprenta_backup_last_verify_age_seconds", TARGET)]
    assert (now - verified_at).total_seconds() - 5 <= verify_age
    assert samples[("amprenta_backup_failures_total", BROKEN)] == 1
    assert samples[("amprenta_backup_failures_total", TARGET)] == 0
    assert ("amprenta_backup_last_success_age_seconds", BROKEN) not in samples
    anonymous = httpx.get(f"{deployment.base_url}{URL_PREFIX}/metrics", timeout=10)
    assert anonymous.status_code == 401 and "amprenta_backup_" not in anonymous.text
