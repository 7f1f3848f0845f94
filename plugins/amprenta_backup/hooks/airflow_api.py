"""AirflowApiHook: the DAGs and Assets Airflow knows, read from its REST API inside a task.

Task code may not use Airflow's ORM (Airflow 3), so a task asks the api-server, through the
HTTP connection ``BACKUP_AIRFLOW_API_CONN_ID`` (host ``http://host:port``; login and password
of a user who may read DAGs and assets, exchanged for a token at ``/auth/token``; or no login
and a token as the password).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.plan import RestorePlan
from amprenta_backup.core.restore.quiesce import ACTIVE_STATES, QuiescePlan, TaskRef, plan_quiesce
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
    """Reads ``/api/v2/dags`` and ``/api/v2/assets`` (every page) of the api-server; pauses
    and resumes DAGs and lists their active task instances (a
    :class:`~amprenta_backup.core.restore.quiesce.WriterControl`).

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

    @contextmanager
    def _session(self) -> Iterator[httpx.Client]:
        client = self._client()  # already open (it fetched the token): close, not `with`
        try:
            yield client
        finally:
            client.close()

    def dags(self) -> list[DagInfo]:
        """Every DAG with its tags, pause state and the Assets its tasks produce and read."""
        with self._session() as client:
            return dags_from_rest(list(self._pages(client, "/api/v2/dags", "dags")),
                                  list(self._pages(client, "/api/v2/assets", "assets")))

    def paused_states(self, dag_ids: Sequence[str]) -> dict[str, bool]:
        """``{dag_id: is_paused}`` of the DAGs Airflow knows (an unknown one is left out)."""
        found: dict[str, bool] = {}
        with self._session() as client:
            for dag_id in dag_ids:
                answer = client.get(f"/api/v2/dags/{quote(dag_id, safe='')}")
                if answer.status_code == httpx.codes.NOT_FOUND:
                    continue
                answer.raise_for_status()
                found[dag_id] = bool(answer.json()["is_paused"])
        return found

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause or unpause a DAG (``PATCH /api/v2/dags/{dag_id}``)."""
        with self._session() as client:
            answer = client.patch(f"/api/v2/dags/{quote(dag_id, safe='')}",
                                  params={"update_mask": "is_paused"},
                                  json={"is_paused": paused})
            answer.raise_for_status()

    def active_tasks(self, dag_ids: Sequence[str]) -> list[TaskRef]:
        """The queued, running and restarting task instances of these DAGs, any run."""
        if not dag_ids:
            return []
        found: list[TaskRef] = []
        with self._session() as client:
            while True:
                answer = client.post("/api/v2/dags/~/dagRuns/~/taskInstances/list", json={
                    "dag_ids": list(dag_ids), "state": list(ACTIVE_STATES),
                    "page_offset": len(found), "page_limit": PAGE})
                answer.raise_for_status()
                page = answer.json()["task_instances"]
                found.extend(TaskRef.from_rest(item) for item in page)
                if len(page) < PAGE:
                    return found

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
    return pipelines_for(names, plan.conn.with_database(plan.database), settings)


def pipelines_for(names: Sequence[str], conn: PgConnInfo,
                  settings: PipelineSettings | None = None) -> Pipelines:
    """The DAGs writing to and reading from the database of ``conn``, which tags and
    ``BACKUP_WRITERS`` call ``names`` (see :func:`find_pipelines`)."""
    settings = settings or PipelineSettings.from_env()
    dags, known = known_dags(settings)
    return find_pipelines(names, conn, dags, override=settings.writers, known=known)


def cluster_pipelines(conn_id: str, label: str,
                      settings: PipelineSettings | None = None) -> Pipelines:
    """The DAGs writing to the database of connection ``conn_id`` (a point-in-time restore's
    cluster), which tags may also call ``label`` (``BACKUP_WAL_TARGET``)."""
    conn = PostgresTargetHook(conn_id).get_conninfo()
    names = (*target_names(conn_id, conn.dbname, conn.dbname), label)
    return pipelines_for(names, conn, settings)


def databases_pipelines(databases: Sequence[tuple[str, str]],
                        settings: PipelineSettings | None = None) -> Pipelines:
    """The DAGs writing to the databases of backup targets (``(target, database)``: what a
    disaster recovery restores), on the servers of the targets' connections, as one
    :class:`Pipelines`, labelled with the databases that have writers (else every one)."""
    settings = settings or PipelineSettings.from_env()
    dags, known = known_dags(settings)
    writers: dict[str, list[str]] = {}
    readers: dict[str, list[str]] = {}
    paused: set[str] = set()
    written: list[str] = []
    for target, database in databases:
        try:
            conn = PostgresTargetHook(target.partition(".")[0]).get_conninfo()
        except Exception as exc:  # the old server's connection may be gone: tags still count
            log.warning("connection of target %s not readable (%s): its Assets are not "
                        "matched", target, exc)
            conn = PgConnInfo(host="")
        found = find_pipelines(restored_names(target, database, database),
                               conn.with_database(database), dags,
                               override=settings.writers, known=known)
        for into, part in ((writers, found.writers), (readers, found.readers)):
            for dag_id, why in part.items():
                have = into.setdefault(dag_id, [])
                have.extend(w for w in why if w not in have)
        paused.update(found.paused)
        written.extend([database] if found.writers else [])
    return Pipelines(target=", ".join(t for t, _ in databases),
                     database=", ".join(written or [d for _, d in databases]),
                     writers=dict(sorted(writers.items())),
                     readers={d: r for d, r in sorted(readers.items()) if d not in writers},
                     paused=tuple(sorted(paused)), known=known)


def known_dags(settings: PipelineSettings) -> tuple[list[DagInfo], bool]:
    """Every DAG the api-server knows, and whether it could be read."""
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
    return dags, known


def quiesce_plan(pipelines: Pipelines, enabled: bool,
                 settings: PipelineSettings | None = None) -> QuiescePlan:
    """What pausing the writers of ``pipelines`` will do: which are paused, which left, and
    which of their tasks are at work now (read from the api-server when it is set up)."""
    settings = settings or PipelineSettings.from_env()
    if enabled and pipelines.writers and not settings.airflow_api_conn_id:
        raise ConfigError(
            f"{len(pipelines.writers)} DAG(s) write to database {pipelines.database!r} "
            f"({', '.join(pipelines.writers)}) and pausing them needs Airflow's REST API: set "
            "BACKUP_AIRFLOW_API_CONN_ID (docs/verify-and-restore.md), or run with "
            "pause_writers off and pause them by hand")
    running: list[TaskRef] = []
    if enabled and pipelines.writers and settings.airflow_api_conn_id:
        try:
            running = AirflowApiHook(settings.airflow_api_conn_id).active_tasks(
                list(pipelines.writers))
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            log.warning("could not list the writers' running tasks through connection %r: %s",
                        settings.airflow_api_conn_id, exc)
    paused = dict.fromkeys(pipelines.paused, True)
    return plan_quiesce(pipelines.writers, paused, running, enabled=enabled,
                        wait_seconds=settings.quiesce_wait_seconds)
