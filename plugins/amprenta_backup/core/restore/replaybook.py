"""ReplayBook: replay plans in the catalog's ``replay_plans`` (one row per restore run), and
which of their runs were re-run and when."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.restore.replay import ReplayPlan

TABLE = "replay_plans"


def plan_id(dag_id: str, run_id: str) -> str:
    """The row of the plan a DAG run made: one per run, so a cleared plan task replaces it."""
    return f"{dag_id}/{run_id}"


class ReplayBook:
    """Saves and reads :class:`ReplayPlan`\\ s.

    :param catalog: the backup catalog
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def save(self, plan: ReplayPlan, dag_id: str, run_id: str) -> str:
        """Record the plan a run of ``dag_id`` made; returns its id."""
        key = plan_id(dag_id, run_id)
        data = plan.to_dict()
        self.catalog.upsert(TABLE, {
            "id": key, "kind": plan.kind, "target": plan.target, "database_name": plan.database,
            "point": plan.point, "point_source": plan.point_source,
            "writers": json.dumps(data["writers"]), "runs": json.dumps(data["runs"]),
            "run_count": plan.count, "known": plan.known, "made_at": plan.made_at,
            "dag_id": dag_id, "run_id": run_id})
        return key

    def mark_replayed(self, key: str, cleared: Sequence[dict[str, Any]]) -> None:
        """Stamp ``replayed_at`` and what was cleared (``[{dag_id, run_id, ...}]``)."""
        with self.catalog.cursor() as cur:
            cur.execute("UPDATE replay_plans SET replayed_at = now(), replayed = %s, "
                        "updated_at = now() WHERE id = %s", (json.dumps(list(cleared)), key))

    def get(self, key: str) -> dict[str, Any] | None:
        """The row of plan ``key`` (``runs`` and ``replayed`` decoded), or None."""
        with self.catalog.cursor() as cur:
            cur.execute("SELECT * FROM replay_plans WHERE id = %s", (key,))
            row = cur.fetchone()
        return dict(row) if row else None

    def latest(self, target: str, limit: int = 10) -> list[dict[str, Any]]:
        """The newest plans of a target, newest first."""
        with self.catalog.cursor() as cur:
            cur.execute("SELECT * FROM replay_plans WHERE target = %s ORDER BY made_at DESC "
                        "LIMIT %s", (target, limit))
            return [dict(row) for row in cur.fetchall()]
