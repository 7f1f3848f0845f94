"""The dashboard's figures over a real catalog, checked against the rows put in it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.dashboard import Dashboard, DashboardSettings
from amprenta_backup.sandbox.history import History, load_history, make_history

NOW = datetime.now(UTC).replace(microsecond=0)
DAYS, KEEP = 40, 10


@pytest.fixture
def history(catalog: Catalog) -> History:
    # 3 targets x 40 days; (target + day) % 20 == 0 fails, so db001's newest backup failed
    made = make_history(targets=3, days=DAYS, now=NOW, keep_days=KEEP, fail_every=20)
    load_history(catalog, made)
    return made


@pytest.fixture
def dashboard(catalog: Catalog) -> Dashboard:
    return Dashboard(catalog, DashboardSettings(targets=["db000", "never_backed_up"],
                                                stale_after=timedelta(hours=26)))


def _by_target(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["target"], []).append(row)
    return grouped


def test_each_target_shows_its_last_backup_verify_drill_and_totals(
    history: History, dashboard: Dashboard,
) -> None:
    state = {t["target"]: t for t in dashboard.targets(NOW)}
    assert sorted(state) == ["db000", "db001", "db002", "never_backed_up"]
    verifies, drills = _by_target(history.verifications), _by_target(history.drills)
    for target, rows in _by_target(history.records).items():
        rows.sort(key=lambda r: r["started_at"])
        good = [r for r in rows if r["status"] == "completed"]
        got = state[target]
        assert got["last_backup"]["backup_id"] == rows[-1]["id"]
        assert got["last_backup"]["status"] == rows[-1]["status"]
        assert got["last_success"]["backup_id"] == good[-1]["id"]
        assert got["last_success"]["age_seconds"] == (
            NOW - good[-1]["completed_at"]).total_seconds()
        assert got["stored_bytes"] == sum(r["file_size_bytes"] for r in good)
        assert got["failures_total"] == sum(r["status"] == "failed" for r in rows)
        assert got["last_verify"]["backup_id"] == verifies[target][-1]["backup_id"]
        assert got["last_drill"]["rto_seconds"] == drills[target][-1]["rto_seconds"]
    assert state["db001"]["last_backup"]["status"] == "failed"
    assert state["never_backed_up"]["last_backup"] is None and state["never_backed_up"]["stale"]


def test_success_rate_storage_and_trend_match_the_records(
    history: History, dashboard: Dashboard,
) -> None:
    since = NOW - timedelta(days=30)
    window = [r for r in history.records if since <= r["created_at"] <= NOW]
    succeeded = [r for r in window if r["status"] != "failed"]
    rates = dashboard.success_rates(30, NOW)
    assert (rates["total"], rates["succeeded"]) == (len(window), len(succeeded))
    assert rates["success_rate"] == round(len(succeeded) * 100.0 / len(window), 2)

    storage = dashboard.storage(30, NOW)
    days = [date.fromisoformat(d) for d in storage["days"]]
    assert days[0] == since.date() and days[-1] == NOW.date()
    for i, day in enumerate(days):
        held = {t: sum(r["file_size_bytes"] for r in rows if r["status"] != "failed"
                       and r["completed_at"].date() <= day
                       and (r["deleted_at"] is None or r["deleted_at"].date() > day))
                for t, rows in _by_target(history.records).items()}
        assert {t: v[i] for t, v in storage["targets"].items()} == held, day
        assert storage["total"][i] == sum(held.values())

    trend = dashboard.trend(30, now=NOW)
    assert [p["backup_id"] for p in trend] == [
        r["id"] for r in sorted(succeeded, key=lambda r: r["started_at"])
        if r["started_at"] >= since]


def test_problems_list_the_failed_backup_first(history: History, dashboard: Dashboard) -> None:
    problems = dashboard.problems(now=NOW)
    assert problems[0]["kind"] == "backup_failed"
    failed = [p for p in problems if p["kind"] == "backup_failed"]
    assert [p["target"] for p in failed] == ["db001"]
    assert failed[0]["run_id"] and failed[0]["dag_id"] == "daily_backup"
    severities = [p["severity"] for p in problems]
    assert severities == sorted(severities, key=["critical", "warning"].index)
    assert {p["kind"] for p in problems} >= {"backup_failed", "stale"}


def test_rto_and_alerts_per_day(history: History, dashboard: Dashboard) -> None:
    rto = dashboard.rto(365, now=NOW)
    assert [d["rto_seconds"] for d in rto] == [
        d["rto_seconds"] for d in sorted(history.drills, key=lambda d: d["started_at"])]
    alerts = dashboard.alerts(DAYS + 1, now=NOW)
    expected: dict[str, int] = {}
    for h in history.health:
        if h["status"] != "ok":
            key = h["as_of"].astimezone(UTC).date().isoformat()
            expected[key] = expected.get(key, 0) + 1
    assert {a["day"]: a["alerts"] for a in alerts} == expected
    assert {a["severity"] for a in alerts} == {"warning"}


def test_storage_used_shows_the_copy_storage_beside_the_primary(
    history: History, dashboard: Dashboard,
) -> None:
    storage = dashboard.storage(30, NOW)
    copies = _by_target(history.copies)
    for i, day in enumerate(date.fromisoformat(d) for d in storage["days"]):
        held = {t: sum(c["stored_bytes"] for c in rows if c["copied_at"].date() <= day
                       and (c["deleted_at"] is None or c["deleted_at"].date() > day))
                for t, rows in copies.items()}
        assert {t: v[i] for t, v in storage["copy"]["targets"].items()} == held, day
        assert storage["copy"]["total"][i] == sum(held.values())
    # the copy is kept three times as long, so it holds more than the primary at the end
    assert storage["copy"]["total"][-1] > storage["total"][-1] > 0


def test_a_target_without_a_backup_since_the_due_run_is_a_missed_deadline(
    history: History, catalog: Catalog,
) -> None:
    board = Dashboard(catalog, DashboardSettings(stale_after=timedelta(hours=48),
                                                 deadline=timedelta(hours=4)))
    newest = max((r for r in history.records if r["target"] == "db000"
                  and r["status"] == "completed"), key=lambda r: r["completed_at"])
    next_run = datetime.combine(newest["started_at"].date() + timedelta(days=1),
                                datetime.min.time(), UTC).replace(hour=1)
    # 04:59 after the next 01:00 run: its deadline has not passed yet
    calm = {t["target"]: t for t in board.targets(next_run + timedelta(hours=3, minutes=59))}
    assert calm["db000"]["deadline_missed"] is False
    late = next_run + timedelta(hours=5)  # 06:00: the 01:00 run was due by 05:00
    state = {t["target"]: t for t in board.targets(late)}
    assert state["db000"]["deadline_missed"] is True
    assert state["db000"]["due_run_at"] == next_run.isoformat()
    [missed] = [p for p in board.problems(now=late)
                if p["kind"] == "missed_deadline" and p["target"] == "db000"]
    assert missed["severity"] == "warning" and missed["backup_id"] == newest["id"]
    assert next_run.isoformat() in missed["message"] and "4 h" in missed["message"]
    off = Dashboard(catalog, DashboardSettings(stale_after=timedelta(hours=48), deadline=None))
    assert not any(t["deadline_missed"] for t in off.targets(late))


def test_the_page_charts_points_aggregated_per_day_and_per_week(
    history: History, dashboard: Dashboard,
) -> None:
    since = NOW - timedelta(days=30)
    good = [r for r in history.records if r["status"] != "failed"
            and since <= r["started_at"] <= NOW]
    points = {p["day"]: p for p in dashboard.trend_points(30, NOW)}
    for day in {r["started_at"].date() for r in good}:
        that_day = [r for r in good if r["started_at"].date() == day]
        point = points[day.isoformat()]
        assert point["stored_bytes"] == sum(r["file_size_bytes"] for r in that_day)
        assert point["duration_seconds"] == pytest.approx(sum(
            (r["completed_at"] - r["started_at"]).total_seconds() for r in that_day)
            / len(that_day))
    assert len(points) == len({r["started_at"].date() for r in good})
    weeks: dict[str, list[float]] = {}
    for d in history.drills:
        monday = d["started_at"].date() - timedelta(days=d["started_at"].weekday())
        weeks.setdefault(monday.isoformat(), []).append(d["rto_seconds"])
    rto = dashboard.rto_points(365, NOW)  # over POINTS_BY_DAY days: one point per week
    assert {p["day"]: (p["rto_seconds"], p["drills"]) for p in rto} == {
        week: (max(values), len(values)) for week, values in weeks.items()}
