"""Airflow's own authentication and authorization in front of every route of the plugin app.

Airflow mounts a plugin's FastAPI app as it is: the core API's router-level ``get_user``
dependency does not reach it, so the app declares it itself. A caller needs a valid Airflow
token (the ``Authorization: Bearer`` header, or the UI's ``_token`` cookie) and read access
to the runs of the backup DAG: no token is 401, a bad token or no access is 403.

Airflow's API modules are imported on the first request, not when the plugin loads: every
Airflow process (workers and the dag-processor too) imports the plugin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

# the DAG whose runs write the backup records: read access to its runs is read access to them
RECORDS_DAG = "daily_backup"

_bearer = HTTPBearer(auto_error=False)


async def require_backup_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The request's Airflow user, who must be allowed to read the runs of ``daily_backup``."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag

    user = await get_user(request, None, credentials)
    check = requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=RECORDS_DAG)
    await run_in_threadpool(check, request, user)  # 403 when not allowed (a metadata DB read)
