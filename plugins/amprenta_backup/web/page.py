"""``GET /api/v1/backup/dashboard``: the "Backups" page Airflow shows in its navigation.

Rendered on the server from one :meth:`Dashboard.overview`: HTML with inline SVG charts,
no script and no request to anywhere else, so it works offline and inside Airflow's frame.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from amprenta_backup.web import charts, units
from amprenta_backup.web.deps import URL_PREFIX, EngineDep

router = APIRouter(tags=["dashboard"])


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("amprenta_backup.web", "templates"),
                             autoescape=True)
    env.filters.update(size=units.size, duration=units.duration, age=units.age)
    return env


def airflow_links(base: str, item: dict[str, Any]) -> dict[str, str]:
    """Links into Airflow's UI for a problem or record with ``dag_id`` and ``run_id``."""
    dag, run = item.get("dag_id"), item.get("run_id")
    if not dag or not run:
        return {}
    links = {"run": f"{base}/dags/{quote(dag, safe='')}/runs/{quote(run, safe='')}"}
    if item.get("task_id"):
        links["log"] = f"{links['run']}/tasks/{quote(item['task_id'], safe='')}"
    return links


def _charts(view: dict[str, Any]) -> list[str]:
    return [charts.success_rate(view["success_rate"]), charts.storage(view["storage"]),
            *charts.duration_size(view["trend_points"]),
            charts.rto(view["rto_points"], view["rto_objective_seconds"]),
            charts.alerts(view["alerts"], view["storage"]["days"])]


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, engine: EngineDep,
              days: Annotated[int, Query(ge=1, le=3650)] = 30) -> HTMLResponse:
    """The backup dashboard: open problems first, each target's state, then the charts."""
    view = engine.dashboard().page(days)
    root = request.scope.get("root_path", "")
    base = root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else ""
    for item in view["problems"]:
        item["links"] = airflow_links(base, item)
    for target in view["targets"]:
        target["links"] = airflow_links(base, target["last_backup"] or {})
    html = _templates().get_template("dashboard.html").render(
        view=view, charts=_charts(view), days=days)
    return HTMLResponse(html)
