"""The "Backups" page in a real browser: headless Chromium logs in to the deployment's
Airflow UI, opens the page from the navigation and reads what it drew."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.web import units
from tests.e2e.conftest import TARGET, E2ESetup
from tests.e2e.web_catalog import BROKEN, WebCatalog
from tests.support.airflow_deployment import ADMIN, AirflowDeployment
from tests.support.airflow_env import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("AMPRENTA_TEST_ARTIFACTS", REPO / "test-artifacts"))

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (bootstrap installs it as root: "
                             "apt-get install -y chromium)")


@pytest.fixture
def browser_page(deployment: AirflowDeployment) -> Iterator[Any]:
    """A logged-in Chromium page; every request it makes is recorded on ``page.requested``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1800})
            page.requested = []
            page.on("request", lambda request: page.requested.append(request.url))
            page.goto(f"{deployment.base_url}/", wait_until="networkidle")
            page.locator("input[name='username']").fill(ADMIN)
            page.locator("input[name='password']").fill(deployment.admin_password)
            page.locator("button[type='submit']").click()
            page.wait_for_load_state("networkidle")
            yield page
        finally:
            browser.close()


def _chart_values(frame: Any, chart: str, serie: int = 0) -> list[str]:
    """The values one serie of a chart drew, as the page printed them."""
    return list(frame.locator(f"figure[data-chart='{chart}'] g.serie-{serie} desc.value")
                .all_text_contents())


def test_the_page_opens_from_the_navigation_and_draws_the_catalog(
    deployment: AirflowDeployment, e2e: E2ESetup, dashboard_catalog: WebCatalog,
    browser_page: Any,
) -> None:
    page = browser_page
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Backups").click()
    page.wait_for_url("**/plugin/backups")
    frame = page.frame_locator("iframe")
    frame.locator("table#targets").wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    first = frame.locator("tr.problem").first
    assert first.get_attribute("data-kind") == "backup_failed"
    assert first.get_attribute("data-target") == BROKEN
    assert first.get_attribute("data-backup-id") == dashboard_catalog.failed_backup_id
    run_link = first.locator("a.run-link").get_attribute("href") or ""
    assert run_link.endswith(f"/dags/daily_backup/runs/{dashboard_catalog.failed_run.run_id}")

    row = frame.locator(f"tr.target[data-target='{TARGET}']")
    good = [r for r in e2e.catalog.find(target=TARGET) if str(r.status) in ("completed",
                                                                            "verified")]
    assert units.size(sum(r.stored_bytes or 0 for r in good)) in row.inner_text()

    # the charts hold the catalog's points, in human units
    trend = [r for r in reversed(good)]
    assert _chart_values(frame, "size") == [units.size(sum(
        r.stored_bytes or 0 for r in trend if r.started_at.date() == day))
        for day in sorted({r.started_at.date() for r in trend})]
    assert _chart_values(frame, "rto") == [units.duration(dashboard_catalog.drill.rto_seconds)]
    finished = [r for t in (TARGET, BROKEN) for r in e2e.catalog.find(target=t)
                if str(r.status) != "running"]
    rates = sorted(100.0 * sum(str(r.status) != "failed" for r in finished if r.target == t)
                   / sum(r.target == t for r in finished) for t in (TARGET, BROKEN))
    assert _chart_values(frame, "success_rate") == [f"{rate:.2f} %" for rate in rates]
    storage = _chart_values(frame, "storage")
    assert storage[-1] == units.size(sum(r.stored_bytes or 0 for r in good))

    foreign = [u for u in page.requested if not u.startswith((deployment.base_url, "data:",
                                                               "blob:", "about:"))]
    assert foreign == [], "the page must work offline"
