"""The replay plan's two REST steps: read the writer DAGs' runs, and clear the lost ones."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.plan import RestorePlan
from amprenta_backup.core.restore.replay import RESTORE, ReplayPlan, WriterRun, plan_replay
from amprenta_backup.core.restore.writers import Pipelines, find_pipelines
from amprenta_backup.core.settings import PipelineSettings
from amprenta_backup.hooks.airflow_api import AirflowApiHook, known_dags

log = logging.getLogger(__name__)


def make_replay_plan(kind: str, target: str, database: str, point: datetime,
                     point_source: str, writers: Sequence[str],
                     settings: PipelineSettings | None = None) -> ReplayPlan:
    """The runs of ``writers`` that restoring ``database`` to ``point`` took away, read from
    the api-server through ``BACKUP_AIRFLOW_API_CONN_ID`` (unset or unreadable: a plan whose
    runs are unknown, with a warning)."""
    settings = settings or PipelineSettings.from_env()
    runs: list[WriterRun] | None = [] if not writers else None
    if writers and settings.airflow_api_conn_id:
        try:
            found = AirflowApiHook(settings.airflow_api_conn_id).dag_runs(writers, point)
            runs = [WriterRun.from_rest(run) for run in found]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            log.warning("could not read the runs of the writer DAGs %s from Airflow's REST API "
                        "through connection %r (BACKUP_AIRFLOW_API_CONN_ID): %s",
                        ", ".join(writers), settings.airflow_api_conn_id, exc)
    elif writers:
        log.warning("BACKUP_AIRFLOW_API_CONN_ID is not set: the runs of the writer DAGs %s "
                    "cannot be read, so the runs to redo are unknown", ", ".join(writers))
    return plan_replay(kind, target, database, point, point_source, writers, runs)


def restore_replay_plan(plan: RestorePlan, pipelines: Pipelines) -> ReplayPlan:
    """The writer runs replacing ``plan``'s database with its backup takes away (they ran
    after the backup was taken)."""
    return make_replay_plan(RESTORE, pipelines.target, plan.database, plan.backup_started_at,
                            f"backup {plan.backup_id} taken then", list(pipelines.writers))


def replay_runs(plan: ReplayPlan, note: str,
                settings: PipelineSettings | None = None) -> list[dict[str, Any]]:
    """Clear exactly the plan's runs through the api-server; each cleared run's answer."""
    settings = settings or PipelineSettings.from_env()
    if not plan.runs:
        return []
    if not settings.airflow_api_conn_id:
        raise ConfigError("re-running DAG runs needs Airflow's REST API: set "
                         "BACKUP_AIRFLOW_API_CONN_ID to an http connection to the api-server")
    return AirflowApiHook(settings.airflow_api_conn_id).clear_runs(
        [(lost.run.dag_id, lost.run.run_id) for lost in plan.runs], note)


def target_writers(names: Sequence[str], conn: PgConnInfo,
                   settings: PipelineSettings | None = None) -> list[str]:
    """The writer DAGs of the database ``conn`` reaches, which tags and ``BACKUP_WRITERS`` may
    call any of ``names``: Airflow's Assets and tags (when ``BACKUP_AIRFLOW_API_CONN_ID`` is
    set and answers) and ``BACKUP_WRITERS``."""
    settings = settings or PipelineSettings.from_env()
    dags, _ = known_dags(settings)
    return list(find_pipelines(names, conn, dags, override=settings.writers).writers)
