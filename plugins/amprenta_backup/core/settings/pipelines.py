"""Settings of the pipelines a restore knows about: who writes where, and how to ask Airflow."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator

from amprenta_backup.core.settings.base import Settings, comma_list, var


def writers_map(value: Any) -> Any:
    """``pg_main=load_orders,load_customers; pg_dr=x`` -> ``{"pg_main": ("load_orders",
    "load_customers"), "pg_dr": ("x",)}``; an item without ``=`` is refused, naming it."""
    if not isinstance(value, str):
        return value
    found: dict[str, tuple[str, ...]] = {}
    for item in (p.strip() for p in value.split(";")):
        if not item:
            continue
        name, sep, dags = item.partition("=")
        if not sep or not name.strip() or not comma_list(dags):
            raise ValueError(f"{item!r} is not `target=dag_id,dag_id` (items are separated "
                             "by `;`, e.g. `pg_main=load_orders,load_customers;pg_dr=sync`)")
        found[name.strip()] = found.get(name.strip(), ()) + comma_list(dags)
    return found


WritersMap = Annotated[dict[str, tuple[str, ...]], BeforeValidator(writers_map)]


class PipelineSettings(Settings):
    """Which DAGs write to which target (shown in restore plans and approvals)."""

    group: ClassVar[str] = "Pipelines"

    writers: WritersMap = var(
        "BACKUP_WRITERS", dict, "DAGs that write to a target beyond those Airflow shows "
        "(Assets `postgres://host:port/db/schema/table` they produce, tags `writes:<target>`): "
        "`target=dag_id,dag_id;target=dag_id` (`target` a BACKUP_TARGETS name or a "
        "connection id)", shown="(none)")
    airflow_api_conn_id: str | None = var(
        "BACKUP_AIRFLOW_API_CONN_ID", None, "HTTP connection of Airflow's api-server (host "
        "`http://host:port`, login and password of a user who may read DAGs and assets); the "
        "restore's plan task reads `/api/v2/dags` and `/api/v2/assets` through it",
        shown="(none: BACKUP_WRITERS only)")
    quiesce_wait_seconds: float = var(
        "BACKUP_QUIESCE_WAIT_SECONDS", 600.0, "How long a restore that pauses the writer DAGs "
        "(`pause_writers`) waits for their queued and running tasks to finish before it gives "
        "up (resuming them, restoring nothing)", ge=0, le=86400, unit="seconds",
        shown="`600`")
