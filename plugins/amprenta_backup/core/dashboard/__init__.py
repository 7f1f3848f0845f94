"""The dashboard's figures over the catalog: per-target state, trends and open problems.

Everything here reads the catalog only (no storage, no source server), so the page, the JSON
API and the Prometheus endpoint answer in milliseconds even with years of records. PITR
figures come from the catalog too: the recoverable window runs from the oldest restorable
base backup to now, and the WAL archive lag is the current RPO ``daily_health`` measured last
(its ``wal_rpo`` check).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from croniter import croniter

from amprenta_backup.core import metrics
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.constants import DAILY_RUN_CRON
from amprenta_backup.core.dashboard import queries
from amprenta_backup.core.dashboard.problems import open_problems
from amprenta_backup.core.settings import AlertSettings, BackupConfig, DrillSettings

__all__ = ["Dashboard", "DashboardSettings"]


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboard judges against.

    :param targets: the configured targets (shown even before their first backup)
    :param stale_after: a target whose newest restorable backup is older is stale
    :param rto_objective_seconds: the drills' objective (``BACKUP_DRILL_RTO_SECONDS``)
    :param schedule: when ``daily_backup`` runs (cron, UTC)
    :param deadline: how long after a scheduled run its backup must have completed
        (``BACKUP_DEADLINE_HOURS``); ``None`` or zero: no deadline
    """

    targets: Sequence[str] = ()
    stale_after: timedelta = timedelta(hours=26)
    rto_objective_seconds: float = 14400.0
    schedule: str = DAILY_RUN_CRON
    deadline: timedelta | None = timedelta(hours=4)

    def last_due(self, now: datetime) -> datetime | None:
        """The newest scheduled run whose deadline has passed at ``now``: a target whose newest
        restorable backup completed before it missed that run's deadline."""
        if not self.deadline:
            return None
        slot: datetime = croniter(self.schedule, (now - self.deadline).astimezone(UTC)
                                  ).get_prev(datetime)
        return slot


POINTS_BY_DAY = 62  # windows up to this many days chart a point per day, longer ones per week


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
        self._cur: Any = None  # the open transaction of :meth:`session`, if any

    @classmethod
    def configured(cls, catalog: Catalog, config: BackupConfig) -> Dashboard:
        """Targets and the stale threshold from ``config``, the RTO objective from
        ``BACKUP_DRILL_RTO_SECONDS``."""
        rto, deadline = _objectives(tuple(sorted(
            (k, v) for k, v in os.environ.items() if k.startswith("BACKUP_"))))
        return cls(catalog, DashboardSettings(
            targets=[t.name for t in config.targets],
            stale_after=timedelta(hours=config.health_max_age_hours),
            rto_objective_seconds=rto,
            deadline=timedelta(hours=deadline) if deadline else None))

    def metric(self, name: str, days: int, target: str | None = None) -> Any:
        """One of the spec's queries: ``success-rate``, ``size-duration`` (one dict) or
        ``storage-trend`` (a row per day, newest first)."""
        queries_: dict[str, Callable[..., Any]] = {
            "success-rate": metrics.success_rate, "size-duration": metrics.size_duration,
            "storage-trend": metrics.storage_trend}
        return queries_[name](self.catalog, days, target=target)

    def _rows(self, sql: str, params: dict[str, Any], target: str | None = None,
              ) -> list[dict[str, Any]]:
        statement = sql.format(target="AND target = %(target)s" if target else "").encode()
        if self._cur is not None:
            self._cur.execute(statement, {**params, "target": target})
            return list(self._cur.fetchall())
        with self.catalog.cursor() as cur:
            cur.execute(statement, {**params, "target": target})
            return list(cur.fetchall())

    @contextmanager
    def session(self) -> Iterator[None]:
        """Run every statement until the end of the block in one catalog transaction (one
        pooled connection, one commit) instead of one each."""
        if self._cur is not None:
            yield
            return
        with self.catalog.cursor() as cur:
            self._cur = cur
            try:
                yield
            finally:
                self._cur = None

    def now(self) -> datetime:
        """The catalog server's clock, which every age here is measured by."""
        if self._cur is None:
            return self.catalog.now()
        row: datetime = self._rows("SELECT clock_timestamp() AS now", {})[0]["now"]
        return row

    def _window(self, days: int, now: datetime | None, **more: Any) -> dict[str, Any]:
        end = now or self.now()
        return {"now": end, "since": end - timedelta(days=days), **more}

    def targets(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Per target: last backup, last good one, last verify, last drill, PITR, totals."""
        end = now or self.now()
        rows = self._rows(queries.STATUS, {"targets": list(self.settings.targets)})
        due = self.settings.last_due(end)
        return [self._target(row, end, due) for row in rows]

    def _target(self, r: dict[str, Any], now: datetime, due: datetime | None,
                ) -> dict[str, Any]:
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
        missed = due is not None and good is not None and r["good_completed_at"] < due
        return {"target": r["target"], "last_backup": last, "last_success": good,
                "last_verify": verify, "last_drill": drill, "pitr": pitr,
                "stored_bytes": int(r["stored_bytes"] or 0),
                "failures_total": int(r["failures_total"] or 0),
                "backups": int(r["backups"] or 0), "corrupt": int(r["corrupt"] or 0),
                "stale": stale, "deadline_missed": missed,
                "due_run_at": _iso(due) if missed else None}

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
        """Bytes held at the end of each UTC day, per target and in total, in the primary
        storage and in the copy storage (``copy``: the ``BACKUP_COPY_*`` second copy)."""
        end = now or self.now()
        since_day, last_day = (end - timedelta(days=days)).date(), end.date()
        params = {"since_day": since_day, "day": last_day,
                  "start": datetime.combine(since_day, time(), UTC),
                  "end": datetime.combine(last_day + timedelta(days=1), time(), UTC)}
        count = (last_day - since_day).days + 1
        primary = self._held(queries.STORAGE, params)
        copies = self._held(queries.COPY_STORAGE, params)
        return {"days": [(since_day + timedelta(days=i)).isoformat() for i in range(count)],
                "targets": primary, "total": _total(primary, count),
                "copy": {"targets": copies, "total": _total(copies, count)}}

    def _held(self, sql: str, params: dict[str, Any]) -> dict[str, list[int]]:
        series: dict[str, list[int]] = {}
        for row in self._rows(sql, params):  # a row per target and day, summed in SQL
            series.setdefault(row["target"], []).append(int(row["held"]))
        return series

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

    def trend_points(self, days: int = 30, now: datetime | None = None,
                     ) -> list[dict[str, Any]]:
        """The page's duration and size chart: per UTC day (per week beyond
        :data:`POINTS_BY_DAY` days) the average duration and the stored bytes of the
        successful backups started then."""
        rows = self._rows(queries.TREND_POINTS, self._window(days, now, bucket=_bucket(days)))
        return [{**r, "day": r["day"].isoformat()} for r in rows]

    def rto_points(self, days: int = 365, now: datetime | None = None,
                   ) -> list[dict[str, Any]]:
        """The page's RTO chart: per UTC day (per week beyond :data:`POINTS_BY_DAY` days) the
        longest RTO the drills measured and the strictest objective they were held to."""
        window = self._window(days, now, bucket=_bucket(days),
                              objective=self.settings.rto_objective_seconds)
        return [{**r, "day": r["day"].isoformat(), "drills": int(r["drills"]),
                 "failed": int(r["failed"])} for r in self._rows(queries.RTO_POINTS, window)]

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
                 now: datetime | None = None, health: list[dict[str, Any]] | None = None,
                 ) -> list[dict[str, Any]]:
        """What needs a person, worst and newest first (see :mod:`.problems`); ``targets``
        and ``health`` when the caller read them already."""
        end = now or self.now()
        state = targets if targets is not None else self.targets(end)
        checks = health if health is not None else self.health()
        return open_problems(state, self._rows(queries.CORRUPT, {}), checks, self.settings)

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

    def _panels(self, days: int) -> dict[str, Any]:
        now = self.now()
        targets = self.targets(now)
        return {"now": now, "days": days, "targets": targets,
                "problems": self.problems(targets, now),
                "success_rate": self.success_rates(days, now),
                "storage": self.storage(days, now),
                "rto_objective_seconds": self.settings.rto_objective_seconds,
                "alerts": self.alerts(days, now=now)}

    def overview(self, days: int = 30) -> dict[str, Any]:
        """Everything the page shows, measured at one instant, in one transaction: with each
        successful backup of the window (``trend``) and each drill of the year (``rto``)."""
        with self.session():
            view = self._panels(days)
            now = view["now"]
            view.update(trend=self.trend(days, now=now), rto=self.rto(max(days, 365), now=now))
        return {**view, "now": _iso(now)}

    def page(self, days: int = 30) -> dict[str, Any]:
        """What the page draws: :meth:`overview` with the trend and RTO as chart points (per
        day or week, aggregated in SQL) instead of one row per backup and drill."""
        with self.session():
            view = self._panels(days)
            now = view["now"]
            view.update(trend_points=self.trend_points(days, now),
                        rto_points=self.rto_points(max(days, 365), now))
        return {**view, "now": _iso(now)}


@lru_cache(maxsize=4)
def _objectives(environ: tuple[tuple[str, str], ...]) -> tuple[float, float]:
    """The RTO objective and the backup deadline in hours, read once per distinct ``BACKUP_*``
    environment (a few ms of validation each: more than a small endpoint's SQL)."""
    env = dict(environ)
    return (DrillSettings.from_env(env).rto_seconds,
            AlertSettings.from_env(env).deadline_hours)


def _bucket(days: int) -> str:
    return "day" if days <= POINTS_BY_DAY else "week"


def _total(series: dict[str, list[int]], count: int) -> list[int]:
    return [sum(column) for column in zip(*series.values(), strict=True)] if series else [0] * count
