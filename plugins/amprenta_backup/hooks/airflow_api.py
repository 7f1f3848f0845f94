"""AirflowApiHook: the DAGs and Assets Airflow knows, read from its REST API inside a task.

Task code may not use Airflow's ORM (Airflow 3), so a task asks the api-server, through the
HTTP connection ``BACKUP_AIRFLOW_API_CONN_ID`` (host ``http://host:port``; login and password
of a user who may read DAGs and assets, exchanged for a token at ``/auth/token``; or no login
and a token as the password).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook

from amprenta_backup.core.restore.plan import RestorePlan
from amprenta_backup.core.restore.writers import (
    DagInfo,
    Pipelines,
    dags_from_rest,
    find_pipelines,
    restored_names,
    target_names,
)
from amprenta_backup.core.settings import PipelineSettings
from amprenta_backup.hooks.postgres import PostgresTargetHook

log = logging.getLogger(__name__)
PAGE = 100


class AirflowApiHook(BaseHook):
    """Reads ``/api/v2/dags`` and ``/api/v2/assets`` (every page) of the api-server.

    :param airflow_api_conn_id: an ``http`` connection to the api-server
    :param timeout: seconds per request
    """

    conn_name_attr = "airflow_api_conn_id"
    conn_type = "http"
    hook_name = "Airflow REST API (amprenta-backup)"

    def __init__(self, airflow_api_conn_id: str, timeout: float = 30.0) -> None:
        super().__init__()
        self.airflow_api_conn_id = airflow_api_conn_id
        self.timeout = timeout

    def _client(self) -> httpx.Client:
        conn = self.get_connection(self.airflow_api_conn_id)
        host = conn.host or ""
        if "://" not in host:
            host = f"{conn.schema or 'http'}://{host}"
        base = f"{host.rstrip('/')}{f':{conn.port}' if conn.port else ''}"
        client = httpx.Client(base_url=base, timeout=self.timeout)
        token = conn.password or ""
        if conn.login:
            answer = client.post("/auth/token", json={"username": conn.login,
                                                      "password": conn.password or ""})
            answer.raise_for_status()
            token = answer.json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        return client

    @staticmethod
    def _pages(client: httpx.Client, path: str, key: str,
               **params: str) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            answer = client.get(path, params={**params, "limit": PAGE, "offset": offset})
            answer.raise_for_status()
            body = answer.json()
            yield from body[key]
            offset += len(body[key])
            if not body[key] or offset >= body.get("total_entries", 0):
                return

    def dags(self) -> list[DagInfo]:
        """Every DAG with its tags, pause state and the Assets its tasks produce and read."""
        client = self._client()  # already open (it fetched the token): close, not `with`
        try:
            return dags_from_rest(list(self._pages(client, "/api/v2/dags", "dags")),
                                  list(self._pages(client, "/api/v2/assets", "assets")))
        finally:
            client.close()

    def dag_runs(self, dag_ids: Iterable[str], ended_after: datetime) -> list[dict[str, Any]]:
        """The runs of ``dag_ids`` that had not ended at ``ended_after`` (finished later, or
        not finished), as ``/api/v2/dags/{dag_id}/dagRuns`` gives them; a DAG Airflow does
        not know (HTTP 404, e.g. a ``BACKUP_WRITERS`` typo) has none, with a warning."""
        client = self._client()
        runs: list[dict[str, Any]] = []
        try:
            for dag_id in dag_ids:
                try:
                    runs.extend(self._pages(client, f"/api/v2/dags/{quote(dag_id, safe='')}"
                                            "/dagRuns", "dag_runs",
                                            end_date_gt=ended_after.isoformat()))
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code != 404:
                        raise
                    log.warning("writer DAG %r is not known to Airflow: no runs of it are "
                                "listed (check BACKUP_WRITERS)", dag_id)
            return runs
        finally:
            client.close()

    def clear_runs(self, runs: Iterable[tuple[str, str]], note: str) -> list[dict[str, Any]]:
        """Clear each ``(dag_id, run_id)`` (``POST .../dagRuns/{run_id}/clear``, not a dry
        run): Airflow runs every task of it again, with its own data interval and conf.
        Returns each run as the API answers it, with ``is_paused`` of its DAG (a paused DAG's
        cleared run waits until it is unpaused)."""
        client = self._client()
        cleared: list[dict[str, Any]] = []
        try:
            for dag_id, run_id in runs:
                dag = f"/api/v2/dags/{quote(dag_id, safe='')}"
                answer = client.post(f"{dag}/dagRuns/{quote(run_id, safe='')}/clear",
                                     json={"dry_run": False, "note": note[:1000]})
                answer.raise_for_status()
                paused = client.get(dag)
                paused.raise_for_status()
                cleared.append({**answer.json(), "is_paused": bool(paused.json()["is_paused"])})
            return cleared
        finally:
            client.close()


def plan_pipelines(plan: RestorePlan, settings: PipelineSettings | None = None) -> Pipelines:
    """The DAGs writing to and reading from the database ``plan`` restores into: from the
    api-server when ``BACKUP_AIRFLOW_API_CONN_ID`` is set (if it cannot be read, a warning
    and ``known=False``), and ``BACKUP_WRITERS``."""
    settings = settings or PipelineSettings.from_env()
    conn_id = plan.request.target_conn_id
    if conn_id:
        own = PostgresTargetHook(conn_id).get_conninfo().dbname
        names = target_names(conn_id, plan.database, own)
    else:
        names = restored_names(plan.source_target, plan.source_database, plan.database)
    conn = plan.conn.with_database(plan.database)
    dags: list[DagInfo] = []
    known = settings.airflow_api_conn_id is not None
    if settings.airflow_api_conn_id:
        try:
            dags = AirflowApiHook(settings.airflow_api_conn_id).dags()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            log.warning("could not read the DAGs and assets from Airflow's REST API through "
                        "connection %r (BACKUP_AIRFLOW_API_CONN_ID): %s; only BACKUP_WRITERS "
                        "names writers", settings.airflow_api_conn_id, exc)
            known = False
    return find_pipelines(names, conn, dags, override=settings.writers, known=known)
