"""Retention policies and the planner: whatever the policy, the never-delete rules hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amprenta_backup.core.constants import MIN_RETENTION_DAYS
from amprenta_backup.core.errors import ConfigError, PreconditionError
from amprenta_backup.core.models import BackupRecord, Status
from amprenta_backup.core.retention.policies import (
    FOREVER,
    Action,
    AgePolicy,
    GFSPolicy,
    KeepLastPolicy,
    RetentionPolicy,
    plan_cleanup,
    policies_from_config,
)
from amprenta_backup.core.settings import BackupConfig, GFSSpec

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


def record(n: int, target: str, status: Status, age: timedelta) -> BackupRecord:
    started = NOW - age
    return BackupRecord(backup_id=f"{started:%Y%m%dT%H%M%SZ}-{n:08x}", target=target,
                        status=status, location=f"file:///b/{n}", started_at=started)


def daily(days: int, target: str = "pg_main", status: Status = Status.COMPLETED
          ) -> list[BackupRecord]:
    """One backup a day at 01:00 for ``days`` days, newest first."""
    return [record(i, target, status, timedelta(days=i, hours=3)) for i in range(days)]


records_st = st.lists(
    st.builds(lambda target, status, minutes: (target, status, minutes),
              st.sampled_from(["pg_a", "pg_b", "pg_b.db2"]), st.sampled_from(list(Status)),
              st.integers(min_value=-60, max_value=800 * 24 * 60)),
    max_size=40,
).map(lambda rows: [record(i, t, s, timedelta(minutes=m)) for i, (t, s, m) in enumerate(rows)])

policy_st: st.SearchStrategy[RetentionPolicy] = st.one_of(
    st.builds(AgePolicy, st.integers(1, 400)),
    st.builds(KeepLastPolicy, st.integers(1, 10)),
    st.builds(GFSPolicy, st.integers(0, 6), st.integers(0, 6), st.integers(1, 13)),
)


@st.composite
def case(draw: st.DrawFn) -> tuple[list[BackupRecord], list[RetentionPolicy],
                                   dict[str, datetime]]:
    records = draw(records_st)
    policies = draw(st.lists(policy_st, min_size=1, max_size=3))
    locked = draw(st.lists(st.sampled_from(records), max_size=5)) if records else []
    until = st.one_of(st.just(FOREVER), st.integers(-30 * 24, 30 * 24).map(
        lambda h: NOW + timedelta(hours=h)))
    return records, policies, {r.backup_id: draw(until) for r in locked}


def _newest_good(records: list[BackupRecord]) -> set[str]:
    """Independently of the planner: per target, the newest verified, else newest completed."""
    keep = set()
    for target in {r.target for r in records}:
        for status in (Status.VERIFIED, Status.COMPLETED):
            mine = [r for r in records if r.target == target and r.status == status]
            if mine:
                keep.add(max(mine, key=lambda r: r.started_at).backup_id)
                break
    return keep


@settings(max_examples=400, deadline=None)
@given(case())
def test_never_delete_rules_hold_for_any_records_and_policies(
    data: tuple[list[BackupRecord], list[RetentionPolicy], dict[str, datetime]],
) -> None:
    records, policies, locks = data
    plan = plan_cleanup(records, policies, NOW, locks)
    deleted = {d.record.backup_id: d.record for d in plan.to_delete}
    assert not [r for r in deleted.values() if r.status == Status.RUNNING]
    floor = NOW - timedelta(days=MIN_RETENTION_DAYS)
    assert not [r for r in deleted.values() if r.started_at > floor]
    assert not [i for i in deleted if i in locks and locks[i] > NOW]
    assert not _newest_good(records) & set(deleted)
    # every record not already deleted is decided exactly once, with a reason
    live = sorted(r.backup_id for r in records if r.status != Status.DELETED)
    assert sorted(d.record.backup_id for d in plan.decisions) == live
    assert all(d.reason for d in plan.decisions)


@settings(max_examples=200, deadline=None)
@given(case(), policy_st)
def test_adding_a_policy_never_deletes_more(
    data: tuple[list[BackupRecord], list[RetentionPolicy], dict[str, datetime]],
    extra: RetentionPolicy,
) -> None:
    records, policies, locks = data
    before = {d.record.backup_id for d in plan_cleanup(records, policies, NOW, locks).to_delete}
    after = {d.record.backup_id
             for d in plan_cleanup(records, [*policies, extra], NOW, locks).to_delete}
    assert after <= before


def test_age_policy_deletes_exactly_what_is_older_than_the_window() -> None:
    records = daily(400)
    plan = plan_cleanup(records, [AgePolicy(365)], NOW)
    assert [d.record.backup_id for d in plan.to_delete] == [r.backup_id for r in records[365:]]
    assert {d.reason for d in plan.to_delete} == {"older than 365 days"}


def test_keep_last_keeps_the_newest_restorable_backups_of_each_target() -> None:
    main = daily(30)
    other = daily(30, target="pg_other")
    main[1].status = Status.FAILED  # a failure is not one of "the last 3"
    plan = plan_cleanup(main + other, [AgePolicy(7), KeepLastPolicy(10)], NOW)
    kept = {d.record.backup_id for d in plan.kept}
    restorable_main = [r for r in main if r.status != Status.FAILED]
    assert kept == ({r.backup_id for r in restorable_main[:10]} | {r.backup_id for r in other[:10]}
                    | {main[1].backup_id})  # the failure is younger than 7 days


def test_gfs_keeps_the_newest_backup_of_recent_days_weeks_and_months() -> None:
    records = daily(120)
    plan = plan_cleanup(records, [AgePolicy(7), GFSPolicy(daily=3, weekly=4, monthly=4)], NOW)
    kept = {d.record.started_at for d in plan.kept}
    expected = {r.started_at for r in records if r.started_at > NOW - timedelta(days=7)}
    for period in (lambda d: d.isocalendar()[:2], lambda d: (d.year, d.month)):
        newest: dict[object, datetime] = {}
        for r in records:
            newest.setdefault(period(r.started_at), r.started_at)
        expected |= set(sorted(newest.values(), reverse=True)[:4])
    assert kept == expected
    reasons = {d.reason for d in plan.kept}
    assert any("monthly backup of 2026-08" in r for r in reasons)
    assert any("weekly backup of 2026-W" in r for r in reasons)


def test_the_newest_verified_backup_outlives_every_policy() -> None:
    records = daily(40)
    records[20].status = Status.VERIFIED
    plan = plan_cleanup(records, [AgePolicy(7)], NOW)
    kept = {d.record.backup_id: d.reason for d in plan.kept}
    assert kept[records[20].backup_id] == "newest verified backup of pg_main"
    assert len(plan.kept) == 7 + 1


def test_without_a_verified_backup_the_newest_completed_one_is_kept() -> None:
    old = [record(i, "pg_old", Status.COMPLETED, timedelta(days=500 + i)) for i in range(3)]
    plan = plan_cleanup(old, [AgePolicy(365)], NOW)
    assert [(d.record.backup_id, d.action) for d in plan.decisions] == [
        (old[0].backup_id, Action.KEEP), (old[1].backup_id, Action.DELETE),
        (old[2].backup_id, Action.DELETE)]


def test_object_lock_running_and_the_floor_keep_backups_and_say_why() -> None:
    running = record(1, "pg_main", Status.RUNNING, timedelta(days=50))
    locked = record(2, "pg_main", Status.COMPLETED, timedelta(days=60))
    held = record(3, "pg_main", Status.COMPLETED, timedelta(days=61))
    young_failure = record(4, "pg_main", Status.FAILED, timedelta(days=2))
    newest = record(5, "pg_main", Status.COMPLETED, timedelta(days=40))
    gone = record(6, "pg_main", Status.COMPLETED, timedelta(days=70))
    locks = {locked.backup_id: NOW + timedelta(days=3), held.backup_id: FOREVER,
             gone.backup_id: NOW - timedelta(days=1)}
    plan = plan_cleanup([running, locked, held, young_failure, newest, gone],
                        [AgePolicy(30)], NOW, locks)
    reasons = {d.record.backup_id: d.reason for d in plan.kept}
    assert reasons == {
        running.backup_id: "running: a backup in progress is never deleted",
        locked.backup_id: "under S3 Object Lock until 2026-11-27 04:00",
        held.backup_id: "under S3 Object Lock until released (legal hold)",
        young_failure.backup_id: "younger than the 7-day safety floor",
        newest.backup_id: "newest completed backup of pg_main",
    }
    assert [d.record.backup_id for d in plan.to_delete] == [gone.backup_id]
    assert plan.kept_reasons()["under S3 Object Lock"] == 2
    assert plan.kept_summary() == (
        "kept 5 (1 newest completed backup, 1 running: a backup in progress is never deleted, "
        "2 under S3 Object Lock, 1 younger than the 7-day safety floor)")
    assert plan_cleanup([], [AgePolicy(30)], NOW).kept_summary() == "kept 0 (none)"
    assert f"DELETE {gone.backup_id}" in plan.render()


def test_the_planner_refuses_bad_input() -> None:
    with pytest.raises(PreconditionError, match="at least one policy"):
        plan_cleanup(daily(3), [], NOW)
    with pytest.raises(PreconditionError, match="timezone-aware"):
        plan_cleanup(daily(3), [AgePolicy(7)], NOW.replace(tzinfo=None))
    with pytest.raises(ConfigError):
        KeepLastPolicy(0)
    with pytest.raises(ConfigError):
        GFSPolicy(0, 0, 0)


@pytest.mark.parametrize(("text", "expected"), [
    ("7d,4w,12m", GFSSpec(7, 4, 12)), (" 12M , 7d ", GFSSpec(7, 0, 12)), ("4w", GFSSpec(0, 4, 0)),
    ("", None), ("0d", None),
])
def test_gfs_setting_parses(text: str, expected: GFSSpec | None) -> None:
    assert GFSSpec.parse(text) == expected


@pytest.mark.parametrize("text", ["7x", "7d,3d", "d", "7 d", "-1d", "7d;4w"])
def test_a_bad_gfs_setting_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ConfigError, match=r"BACKUP_GFS=.*e\.g\. BACKUP_GFS=7d,4w,12m"):
        BackupConfig.from_env({"BACKUP_GFS": text})


def test_policies_follow_the_settings() -> None:
    config = BackupConfig.from_env({"BACKUP_RETENTION_DAYS": "30", "BACKUP_KEEP_LAST": "5",
                                    "BACKUP_GFS": "7d,4w"})
    described = [p.describe() for p in policies_from_config(config)]
    assert described == ["keep 30 days", "keep the last 5", "keep GFS 7d,4w"]
    assert [p.describe() for p in policies_from_config(BackupConfig())] == ["keep 365 days"]
    with pytest.raises(ConfigError, match="BACKUP_KEEP_LAST=-1"):
        BackupConfig.from_env({"BACKUP_KEEP_LAST": "-1"})
    with pytest.raises(ConfigError, match="BACKUP_RETENTION_DAYS=6 is under the 7-day"):
        BackupConfig.from_env({"BACKUP_RETENTION_DAYS": "6"})
