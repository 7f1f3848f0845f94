"""Open problems: what a person should look at first, worst and newest first.

A problem is open while nothing later settles it: a failed backup until the target's next
backup succeeds, a stale target until a fresh backup lands, a missed deadline (no restorable
backup since the newest ``daily_backup`` run whose ``BACKUP_DEADLINE_HOURS`` have passed)
until one completes, a corrupt backup while it is in
the catalog, a failed drill until a drill passes, a health warning while the latest
``daily_health`` run still reports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amprenta_backup.core.dashboard import DashboardSettings

SEVERITY = {"critical": 0, "warning": 1}
# daily_health checks that repeat a problem this module reports from the records already
_COVERED = {"latest_backup_age", "corrupt_backups"}


def _problem(severity: str, kind: str, target: str | None, message: str,
             when: str | None = None, **more: Any) -> dict[str, Any]:
    return {"severity": severity, "kind": kind, "target": target, "message": message,
            "when": when, "backup_id": more.get("backup_id"), "dag_id": more.get("dag_id"),
            "run_id": more.get("run_id"), "task_id": more.get("task_id")}


def _of_target(t: dict[str, Any], settings: DashboardSettings) -> Iterable[dict[str, Any]]:
    name, last, good, drill = t["target"], t["last_backup"], t["last_success"], t["last_drill"]
    if last and last["status"] == "failed":
        yield _problem("critical", "backup_failed", name,
                       f"the last backup of {name} failed: {last['error'] or 'no error recorded'}",
                       last["started_at"], backup_id=last["backup_id"], dag_id=last["dag_id"],
                       run_id=last["run_id"], task_id="backup")
    if good is None:
        if not (last and last["status"] == "failed"):  # said above already
            yield _problem("critical", "no_backup", name, f"{name} has no restorable backup")
    elif t["stale"]:
        hours = good["age_seconds"] / 3600
        yield _problem("warning", "stale", name,
                       f"the newest restorable backup of {name} is {hours:.1f} h old (over "
                       f"{settings.stale_after.total_seconds() / 3600:.0f} h)",
                       good["completed_at"], backup_id=good["backup_id"])
    elif t.get("deadline_missed"):
        hours = (settings.deadline.total_seconds() / 3600) if settings.deadline else 0
        yield _problem("warning", "missed_deadline", name,
                       f"no restorable backup of {name} since the daily_backup run of "
                       f"{t['due_run_at']} (due within {hours:g} h); the newest completed "
                       f"{good['completed_at']}", t["due_run_at"], backup_id=good["backup_id"],
                       dag_id="daily_backup")
    if drill and drill["passed"] is False:
        yield _problem("critical", "drill_failed", name,
                       f"the last restore drill of {name} failed: "
                       f"{drill['error'] or 'a check failed'}", drill["started_at"],
                       dag_id=drill["dag_id"], run_id=drill["run_id"])
    verify = t["last_verify"]
    if verify and verify["ok"] is False:
        yield _problem("critical", "verify_failed", name,
                       f"the last verification of {name} failed: {verify['detail']}",
                       verify["verified_at"], backup_id=verify["backup_id"],
                       dag_id=verify["dag_id"], run_id=verify["run_id"])


def open_problems(targets: list[dict[str, Any]], corrupt: list[dict[str, Any]],
                  health: list[dict[str, Any]], settings: DashboardSettings,
                  ) -> list[dict[str, Any]]:
    """Every open problem, critical first, then the newest first."""
    found = [p for t in targets for p in _of_target(t, settings)]
    found += [_problem("critical", "corrupt", r["target"],
                       f"backup {r['id']} of {r['target']} is corrupt: {r['error']}",
                       _iso(r["started_at"]), backup_id=r["id"], dag_id=r["dag_id"],
                       run_id=r["run_id"]) for r in corrupt]
    found += [_problem(h["status"], f"health:{h['name']}", h["target"],
                       h["detail"] + (f" ({h['hint']})" if h["hint"] else ""), h["as_of"],
                       run_id=h["run_id"], dag_id="daily_health" if h["run_id"] else None)
              for h in health if h["status"] in SEVERITY and h["name"] not in _COVERED]
    found.sort(key=lambda p: p["when"] or "", reverse=True)
    found.sort(key=lambda p: SEVERITY.get(p["severity"], 2))
    return found


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
