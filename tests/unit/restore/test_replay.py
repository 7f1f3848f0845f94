"""Replay plan: which writer DAG runs a restore to a point T took away, from Airflow's JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.restore.replay import (
    PITR_DRILL,
    RESTORE,
    ReplayPlan,
    WriterRun,
    plan_replay,
)

T = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
WRITERS = ("load_customers", "load_orders")


def _rest(dag_id: str, run_id: str, *, ran: datetime | None, minutes: float = 1,
          interval: tuple[datetime, datetime] | None = None, state: str = "success",
          run_after: datetime | None = None) -> dict[str, Any]:
    """One item of /api/v2/dags/{dag_id}/dagRuns as the API sends it (``Z`` times)."""
    def iso(value: datetime | None) -> str | None:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None

    ended = ran + timedelta(minutes=minutes) if ran and state not in ("running",) else None
    return {"dag_run_id": run_id, "dag_id": dag_id, "state": state,
            "run_type": "scheduled" if interval else "manual",
            "run_after": iso(run_after or (interval[1] if interval else ran)),
            "logical_date": iso(interval[0]) if interval else None,
            "data_interval_start": iso(interval[0]) if interval else None,
            "data_interval_end": iso(interval[1]) if interval else None,
            "start_date": iso(ran), "end_date": iso(ended), "conf": {}}


def _hours(start: int, end: int) -> tuple[datetime, datetime]:
    return T + timedelta(hours=start), T + timedelta(hours=end)


def test_exactly_the_runs_that_wrote_after_the_point_are_listed_in_data_order() -> None:
    runs = [
        _rest("load_orders", "before", ran=T - timedelta(hours=2), interval=_hours(-3, -2)),
        _rest("load_orders", "after_2", ran=T + timedelta(hours=2), interval=_hours(1, 2)),
        _rest("load_orders", "after_1", ran=T + timedelta(hours=1), interval=_hours(0, 1)),
        _rest("load_customers", "manual_after", ran=T + timedelta(minutes=30)),
        _rest("load_customers", "manual_before", ran=T - timedelta(minutes=30)),
        # started before T, still writing at T: partly lost
        _rest("load_customers", "late_old_interval", ran=T - timedelta(minutes=5), minutes=10,
              interval=_hours(-24, -23), run_after=T - timedelta(minutes=5)),
        _rest("load_orders", "failed_after", ran=T + timedelta(hours=3), state="failed",
              interval=_hours(2, 3)),
        _rest("load_orders", "queued", ran=None, state="queued", interval=_hours(3, 4)),
        _rest("unrelated", "after", ran=T + timedelta(hours=1), interval=_hours(0, 1)),
    ]
    plan = plan_replay(RESTORE, "pg_main", "orders", T, "backup X taken then", WRITERS,
                       [WriterRun.from_rest(r) for r in runs], now=T + timedelta(hours=5))
    assert [(lost.run.dag_id, lost.run.run_id) for lost in plan.runs] == [
        ("load_customers", "late_old_interval"), ("load_customers", "manual_after"),
        ("load_orders", "after_1"), ("load_orders", "after_2"), ("load_orders", "failed_after")]
    assert plan.headline() == ("5 runs to redo (2 of 2 writer DAGs) since 2026-11-24 05:00:00 "
                               "UTC (backup X taken then)")
    reasons = {lost.run.run_id: lost.reason for lost in plan.runs}
    assert reasons["after_1"] == "data interval ends 2026-11-24 06:00:00 UTC, after the point"
    assert reasons["manual_after"] == "run after 2026-11-24 05:30:00 UTC, after the point"
    assert reasons["late_old_interval"].startswith("still writing at the point")


def test_a_run_that_started_after_the_plan_was_made_wrote_into_the_restored_database() -> None:
    runs = [WriterRun.from_rest(_rest("load_orders", "during", ran=T + timedelta(hours=1))),
            WriterRun.from_rest(_rest("load_orders", "later", ran=T + timedelta(hours=3)))]
    plan = plan_replay(RESTORE, "pg_main", "orders", T, "backup", WRITERS, runs,
                       now=T + timedelta(hours=2))
    assert [lost.run.run_id for lost in plan.runs] == ["during"]


def test_unknown_runs_say_so_and_no_writers_means_nothing_to_redo() -> None:
    unknown = plan_replay(PITR_DRILL, "pg_main", "orders", T, "PITR target", WRITERS, None)
    assert not unknown.known and unknown.count == 0
    assert unknown.headline().startswith("runs to redo unknown: Airflow's DAG runs were not "
                                         "read (set BACKUP_AIRFLOW_API_CONN_ID)")
    none = plan_replay(RESTORE, "pg_main", "orders", T, "backup", (), [])
    assert none.known and none.headline().startswith("0 runs to redo (0 of 0 writer DAGs)")


def test_the_plan_survives_xcom_and_the_catalog_as_json() -> None:
    runs = [WriterRun.from_rest(_rest("load_orders", "a", ran=T + timedelta(hours=1),
                                      interval=_hours(0, 1)))]
    plan = plan_replay(RESTORE, "pg_main", "orders", T, "backup", WRITERS, runs,
                       now=T + timedelta(hours=2))
    again = ReplayPlan.from_dict(plan.to_dict())
    assert again == plan
    assert plan.to_dict()["lines"] == [
        "1 run to redo (1 of 2 writer DAGs) since 2026-11-24 05:00:00 UTC (backup)",
        "redo load_orders a (success; data interval ends 2026-11-24 06:00:00 UTC, after the "
        "point)"]


def test_times_without_a_zone_and_unknown_kinds_are_refused() -> None:
    with pytest.raises(ConfigError, match="has no time zone"):
        WriterRun.from_rest({"dag_id": "d", "dag_run_id": "r", "run_after": "2026-11-24T05:00"})
    with pytest.raises(ConfigError, match="run_after of run"):
        WriterRun.from_rest({"dag_id": "d", "dag_run_id": "r"})
    with pytest.raises(ConfigError, match="kind 'drill' is not one of restore"):
        plan_replay("drill", "pg_main", "orders", T, "x", WRITERS, [])
