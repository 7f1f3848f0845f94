"""The plugin's FastAPI app, mounted by Airflow's api-server at :data:`URL_PREFIX`.

Every route sits behind :func:`~amprenta_backup.web.auth.require_backup_access`. Routers
live one module each (``api.py`` ...) and are listed in :data:`ROUTERS`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from amprenta_backup.web import api, exports, page, prometheus
from amprenta_backup.web.auth import require_backup_access
from amprenta_backup.web.deps import URL_PREFIX

__all__ = ["ROUTERS", "URL_PREFIX", "create_app"]
ROUTERS: tuple[APIRouter, ...] = (api.router, prometheus.router, page.router, exports.router)


def create_app() -> FastAPI:
    """A new app with every router, each route behind Airflow's auth."""
    app = FastAPI(title="amprenta-backup", version="1",
                  description="Backups, verifications, drills, health and metrics of the "
                              "amprenta-backup catalog",
                  dependencies=[Depends(require_backup_access)],
                  docs_url="/docs", openapi_url="/openapi.json")
    for router in ROUTERS:
        app.include_router(router)
    return app
