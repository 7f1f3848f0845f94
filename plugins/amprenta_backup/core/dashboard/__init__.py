"""The dashboard's figures over the catalog: per-target state, trends and open problems.

Everything here reads the catalog only (no storage, no source server), so the page, the JSON
API and the Prometheus endpoint answer in milliseconds even with years of records. PITR
figures come from the catalog too: the recoverable window runs from the oldest restorable
base backup to now, and the WAL archive lag is the current RPO ``daily_health`` measured last
(its ``wal_rpo`` check).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from amprenta_backup.core import metrics
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.dashboard import queries
from amprenta_backup.core.dashboard.problems import open_problems
from amprenta_backup.core.settings import BackupConfig, DrillSettings

__all__ = ["Dashboard", "DashboardSettings"]


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboard judges against.

    :param targets: the configured targets (shown even before their first backup)
    :param stale_after: a target whose newest restorable backup is older is stale
    :param rto_objective_seconds: the drills' objective (``BACKUP_DRILL_RTO_SECONDS``)
    """

    targets: Sequence[str] = ()
    stale_after: timedelta = timedelta(hours=26)
    rto_objective_seconds: float = 14400.0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _age(now: datetime, then: datetime | None) -> float | None:
    return round((now - then).total_seconds(), 3) if then else None


class Dashboard:
    """The figures of the page and the JSON API, each one catalog statement.

    :param catalog: the backup catalog
    :param settings: targets and thresholds
    """

    def __init__(self, catalog: Catalog, settings: DashboardSettings | None = None) -> None:
        self.catalog = catalog
        self.settings = settings or DashboardSettings()

    @classmethod
    def configured(cls, catalog: Catalog, config: BackupConfig) -> Dashboard:
        """Targets and the stale threshold from ``config``, the RTO objective from
        ``BACKUP_DRILL_RTO_SECONDS``."""
        return cls(catalog, DashboardSettings(
            targets=[t.name for t in config.targets],
            stale_after=timedelta(hours=config.health_max_age_hours),
            rto_objective_seconds=DrillSettings.from_env().rto_seconds))

    def metric(self, name: str, days: int, target: str | None = None) -> Any:
        """One of the spec's queries: ``success-rate``, ``size-duration`` (one dict) or
        ``storage-trend`` (a row per day, newest first)."""
        queries_: dict[str, Callable[..., Any]] = {
            "success-rate": metrics.success_rate, "size-duration": metrics.size_duration,
            "storage-trend": metrics.storage_trend}
        return queries_[name](self.catalog, days, target=target)

    def _rows(self, sql: str, params: dict[str, Any], target: str | None = None,
              ) -> list[dict[str, Any]]:
        statement = sql.format(target="AND target = %(target)s" if target else "")
        with self.catalog.cursor() as cur:
            cur.execute(statement.encode(), {**params, "target": target})
            return list(cur.fetchall())

    def now(self) -> datetime:
        """The catalog server's clock, which every age here is measured by."""
        return self.catalog.now()

    def _window(self, days: int, now: datetime | None) -> dict[str, Any]:
        end = now or self.now()
        return {"now": end, "since": end - timedelta(days=days)}

    def targets(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Per target: last backup, last good one, last verify, last drill, PITR, totals."""
        end = now or self.now()
        rows = self._rows(queries.STATUS, {"targets": list(self.settings.targets)})
        return [self._target(row, end) for row in rows]

    def _target(self, r: dict[str, Any], now: datetime) -> dict[str, Any]:
        last = None if r["last_id"] is None else {
            "backup_id": r["last_id"], "status": r["last_status"], "kind": r["last_kind"],
            "started_at": _iso(r["last_started_at"]),
            "completed_at": _iso(r["last_completed_at"]),
            "age_seconds": _age(now, r["last_started_at"]), "stored_bytes": r["last_bytes"],
            "error": r["last_error"], "dag_id": r["last_dag_id"], "run_id": r["last_run_id"]}
        good = None if r["good_id"] is None else {
            "backup_id": r["good_id"], "completed_at": _iso(r["good_completed_at"]),
            "age_seconds": _age(now, r["good_completed_at"]), "stored_bytes": r["good_bytes"]}
        verify = None if r["verified_at"] is None else {
            "backup_id": r["verify_backup_id"], "verified_at": _iso(r["verified_at"]),
            "age_seconds": _age(now, r["verified_at"]), "ok": r["verify_ok"],
            "detail": r["verify_detail"], "dag_id": r["verify_dag_id"],
            "run_id": r["verify_run_id"]}
        drill = None if r["drill_id"] is None else {
            "drill_id": r["drill_id"], "started_at": _iso(r["drill_started_at"]),
            "age_seconds": _age(now, r["drill_started_at"]), "passed": r["drill_passed"],
            "rto_seconds": r["drill_rto_seconds"],
            "rto_objective_seconds": r["drill_rto_objective_seconds"],
            "error": r["drill_error"], "dag_id": r["drill_dag_id"], "run_id": r["drill_run_id"]}
        pitr = None
        if r["oldest_base_at"] is not None or r["wal_rpo_as_of"] is not None:
            pitr = {"oldest_base_at": _iso(r["oldest_base_at"]),
                    "window_seconds": _age(now, r["oldest_base_at"]),
                    "wal_archive_lag_seconds": r["wal_rpo_seconds"],
                    "wal_status": r["wal_rpo_status"], "measured_at": _iso(r["wal_rpo_as_of"])}
        stale = good is None or (now - r["good_completed_at"]) > self.settings.stale_after
        return {"target": r["target"], "last_backup": last, "last_success": good,
                "last_verify": verify, "last_drill": drill, "pitr": pitr,
                "stored_bytes": int(r["stored_bytes"] or 0),
                "failures_total": int(r["failures_total"] or 0),
                "backups": int(r["backups"] or 0), "corrupt": int(r["corrupt"] or 0),
                "stale": stale}

    def success_rates(self, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
        """The spec's success rate over ``days``: in all, and per target."""
        window = self._window(days, now)
        total = metrics.success_rate(self.catalog, days, window["now"])
        per_target = [{"target": r["target"], "total": int(r["total"]),
                       "succeeded": int(r["succeeded"]),
                       "success_rate": round(int(r["succeeded"]) * 100.0 / int(r["total"]), 2)}
                      for r in self._rows(queries.SUCCESS_BY_TARGET, window)]
        return {**total, "targets": per_target}

    def storage(self, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
        """Bytes held in storage at the end of each UTC day, per target and in total."""
        window = self._window(days, now)
        since_day, last_day = window["since"].date(), window["now"].date()
        rows = self._rows(queries.STORAGE, {"since_day": since_day, "day": last_day})
        changes: dict[str, dict[Any, int]] = {}
        opening: dict[str, int] = {}
        for row in rows:
            by_day = changes.setdefault(row["target"], {})
            if row["opening"]:
                opening[row["target"]] = int(row["delta"])
            else:
                by_day[row["day"]] = by_day.get(row["day"], 0) + int(row["delta"])
        days_list = [since_day + timedelta(days=i) for i in range((last_day - since_day).days + 1)]
        series: dict[str, list[int]] = {}
        for target, by_day in sorted(changes.items()):
            held, values = opening.get(target, 0), []
            for day in days_list:
                held += by_day.get(day, 0)
                values.append(held)
            series[target] = values
        total = [sum(values[i] for values in series.values()) for i in range(len(days_list))]
        return {"days": [d.isoformat() for d in days_list], "targets": series, "total": total}

    def trend(self, days: int = 30, target: str | None = None,
              now: datetime | None = None) -> list[dict[str, Any]]:
        """Duration and stored size of each successful backup started in the window."""
        rows = self._rows(queries.TREND, self._window(days, now), target)
        return [{"target": r["target"], "backup_id": r["id"],
                 "started_at": _iso(r["started_at"]), "stored_bytes": r["stored_bytes"],
                 "duration_seconds": r["duration_seconds"]} for r in rows]

    def rto(self, days: int = 365, target: str | None = None,
            now: datetime | None = None) -> list[dict[str, Any]]:
        """Each drill's measured RTO in the window, with the objective it was held to."""
        rows = self._rows(queries.RTO, self._window(days, now), target)
        return [{**r, "started_at": _iso(r["started_at"]), "drill_id": r.pop("id")}
                for r in rows]

    def alerts(self, days: int = 30, target: str | None = None,
               now: datetime | None = None) -> list[dict[str, Any]]:
        """Warning and critical health results per UTC day and severity."""
        rows = self._rows(queries.ALERTS, self._window(days, now), target)
        return [{"day": r["day"].isoformat(), "severity": r["severity"],
                 "alerts": int(r["alerts"])} for r in rows]

    def health(self) -> list[dict[str, Any]]:
        """The results of the latest ``daily_health`` run, worst first."""
        return [{**r, "as_of": _iso(r["as_of"])} for r in self._rows(queries.LATEST_HEALTH, {})]

    def problems(self, targets: list[dict[str, Any]] | None = None,
                 now: datetime | None = None) -> list[dict[str, Any]]:
        """What needs a person, worst and newest first (see :mod:`.problems`)."""
        end = now or self.now()
        state = targets if targets is not None else self.targets(end)
        return open_problems(state, self._rows(queries.CORRUPT, {}), self.health(),
                             self.settings)

    def verifications(self, limit: int = 50, target: str | None = None,
                      ) -> list[dict[str, Any]]:
        """The newest verifications, newest first."""
        rows = self._rows(queries.VERIFICATIONS, {"limit": limit}, target)
        return [{**r, "verified_at": _iso(r["verified_at"])} for r in rows]

    def drills(self, limit: int = 50, target: str | None = None) -> list[dict[str, Any]]:
        """The newest restore drills, newest first."""
        rows = self._rows(queries.DRILLS, {"limit": limit}, target)
        return [{**r, "started_at": _iso(r["started_at"]),
                 "finished_at": _iso(r["finished_at"])} for r in rows]

    def overview(self, days: int = 30) -> dict[str, Any]:
        """Everything the page shows, measured at one instant."""
        now = self.now()
        targets = self.targets(now)
        return {"now": _iso(now), "days": days, "targets": targets,
                "problems": self.problems(targets, now),
                "success_rate": self.success_rates(days, now),
                "storage": self.storage(days, now), "trend": self.trend(days, now=now),
                "rto": self.rto(max(days, 365), now=now),
                "rto_objective_seconds": self.settings.rto_objective_seconds,
                "alerts": self.alerts(days, now=now)}
