"""Health of the backup system as a list of check results per target: ok, warning or critical."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.drill.forecast import RtoForecast, forecast
from amprenta_backup.core.errors import BackupError, first_line
from amprenta_backup.core.models import human_bytes
from amprenta_backup.core.notifications import Alert
from amprenta_backup.core.pgtools import PgConnInfo, for_server, server_major
from amprenta_backup.core.records.clock import SKEW_LIMIT, ClockReading
from amprenta_backup.core.records.heartbeat import DEFAULT_TIMEOUT, find_abandoned
from amprenta_backup.core.settings import BackupTarget
from amprenta_backup.core.storage.base import Storage

log = logging.getLogger(__name__)

WINDOW = timedelta(days=7)  # failures and corrupt backups are looked for this far back


class Level(StrEnum):
    """How bad a check result is; only ``critical`` fails the health task."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    :param name: the check (``latest_backup_age``, ``storage_writable`` ...)
    :param status: ok, warning or critical
    :param detail: what was found
    :param hint: what to do about it (empty when ok)
    :param target: the backup target, or None for checks of the whole system
    :param value: the figure measured, where the check has one (``wal_rpo``: seconds)
    """

    name: str
    status: Level
    detail: str
    hint: str = ""
    target: str | None = None
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data


_STATS = """
SELECT target,
  max(completed_at) FILTER (WHERE status IN ('completed', 'verified', 'corrupt', 'deleted')
      AND error IS NULL AND completed_at <= %(as_of)s) AS last_completed,
  count(*) FILTER (WHERE status = 'failed' AND {window}) AS failures,
  (array_agg(error ORDER BY started_at DESC)
      FILTER (WHERE status = 'failed' AND {window}))[1] AS last_error,
  count(*) FILTER (WHERE {stored}) AS stored,
  coalesce(sum(file_size_bytes) FILTER (WHERE {stored}), 0) AS stored_bytes,
  array_agg(id ORDER BY started_at DESC) FILTER (WHERE status = 'corrupt'
      AND updated_at > %(since)s AND updated_at <= %(as_of)s) AS corrupt
FROM backup_records WHERE target = ANY(%(targets)s) GROUP BY target
""".format(
    window="started_at > %(since)s AND started_at <= %(as_of)s",
    stored="started_at <= %(as_of)s AND (status IN ('completed', 'verified', 'corrupt') OR "
           "(status = 'deleted' AND deleted_at > %(as_of)s AND error IS NULL))",
)

_INSERT = """
INSERT INTO health_checks (as_of, run_id, target, name, status, detail, hint, value)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""


class HealthChecker:
    """Runs every check for the configured targets.

    :param storage: backup storage (probed with a small object)
    :param catalog: the backup catalog
    :param targets: the configured targets (BACKUP_TARGETS)
    :param resolve: ``target -> PgConnInfo`` of the database it backs up
    :param max_age_hours: warn when the newest completed backup is older
    :param rto: the restore objective and the forecast's horizon (None: no forecast)
    """

    def __init__(self, storage: Storage, catalog: Catalog, targets: Sequence[BackupTarget],
                 resolve: Callable[[BackupTarget], PgConnInfo], max_age_hours: int = 48,
                 prefix: str = "", heartbeat_timeout: timedelta = DEFAULT_TIMEOUT,
                 rto: RtoObjective | None = None) -> None:
        self.rto = rto
        self.heartbeat_timeout = heartbeat_timeout
        self.prefix = prefix
        self.storage = storage
        self.catalog = catalog
        self.targets = list(targets)
        self.resolve = resolve
        self.max_age = timedelta(hours=max_age_hours)

    def run(self, as_of: datetime | None = None) -> list[CheckResult]:
        """Every result, system checks first; record checks are computed as of ``as_of``
        (default: now by the catalog server's clock, the one backup times are written with)."""
        results = [self.check_catalog(), self.check_storage()]
        if not self.targets:
            results.append(CheckResult("targets_configured", Level.WARNING,
                                       "BACKUP_TARGETS is empty: nothing is backed up",
                                       "set BACKUP_TARGETS=conn_id[:database],..."))
        if results[0].status == Level.OK:
            reading = self.catalog.clock()
            results.append(check_clock(reading))
            results += self.check_records(as_of or reading.server) + self.check_abandoned()
            results += self.check_rto_forecast(as_of or reading.server)
        for target in self.targets:
            results += self.check_client(target)
        return results

    def check_catalog(self) -> CheckResult:
        try:
            with self.catalog.cursor() as cur:
                cur.execute("SELECT 1")
        except BackupError as exc:
            return CheckResult("catalog_reachable", Level.CRITICAL, str(exc),
                               "fix the catalog database or its connection "
                               "(BACKUP_CATALOG_CONN_ID); backups cannot be recorded")
        return CheckResult("catalog_reachable", Level.OK,
                           f"catalog at {self.catalog.conn.describe()} answers")

    def check_storage(self) -> CheckResult:
        try:
            self.storage.check_ready()
            self.storage.check_writable(self.prefix)  # where backups go: prefix-only policies
        except (BackupError, OSError) as exc:
            return CheckResult("storage_writable", Level.CRITICAL, str(exc),
                               "fix the storage settings (BACKUP_STORAGE_TYPE, BACKUP_S3_*, the "
                               "aws connection) or the service; no backup can be written")
        return CheckResult("storage_writable", Level.OK,
                           f"wrote and removed a probe object in {self.storage.uri('')}")

    def check_records(self, as_of: datetime) -> list[CheckResult]:
        """Age of the newest backup, recent failures, what is stored, and corrupt backups."""
        names = [t.name for t in self.targets]
        with self.catalog.cursor() as cur:
            cur.execute(_STATS, {"as_of": as_of, "since": as_of - WINDOW, "targets": names})
            stats = {row["target"]: row for row in cur.fetchall()}
        results: list[CheckResult] = []
        for name in names:
            row = stats.get(name) or {"last_completed": None, "failures": 0, "stored": 0,
                                      "stored_bytes": 0, "corrupt": None, "last_error": None}
            results += [self._age(name, row["last_completed"], as_of),
                        self._failures(name, int(row["failures"]), row["last_error"]),
                        CheckResult("backups_stored", Level.OK,
                                    f"{row['stored']} backups, "
                                    f"{human_bytes(int(row['stored_bytes']))}",
                                    target=name),
                        self._corrupt(name, list(row["corrupt"] or []))]
        return results

    def check_abandoned(self) -> list[CheckResult]:
        """A warning per RUNNING backup whose process stopped writing its heartbeat."""
        return [CheckResult("abandoned_backup", Level.WARNING,
                            f"backup {item.backup_id} is RUNNING but {item.reason}",
                            "nothing to do by hand: the next backup of this target or "
                            "weekly_cleanup records it FAILED and removes its partial objects",
                            item.target)
                for item in find_abandoned(self.catalog, self.heartbeat_timeout)]

    def check_rto_forecast(self, as_of: datetime) -> list[CheckResult]:
        """Per target with enough drill history: will the restore still meet the objective
        ``horizon_days`` from now, at the database's current growth?"""
        if self.rto is None:
            return []
        found = [forecast(self.catalog, t.name, self.rto.seconds, self.rto.horizon_days, as_of)
                 for t in self.targets]
        return [rto_forecast_result(f) for f in found if f is not None]

    def _age(self, target: str, last: datetime | None, as_of: datetime) -> CheckResult:
        hint = (f"check the daily_backup runs for {target}, and that BACKUP_TARGETS lists it; "
                f"`amprenta-backup backup {target}` takes one now")
        if last is None:
            return CheckResult("latest_backup_age", Level.WARNING,
                               f"no completed backup of {target} yet", hint, target)
        hours = (as_of - last).total_seconds() / 3600
        limit = self.max_age.total_seconds() / 3600
        if hours > limit:
            return CheckResult("latest_backup_age", Level.WARNING,
                               f"newest completed backup is {hours:.1f} hours old "
                               f"(limit {limit:.0f} h)", hint, target)
        return CheckResult("latest_backup_age", Level.OK,
                           f"newest completed backup is {hours:.1f} hours old", target=target)

    def _failures(self, target: str, count: int, last_error: str | None) -> CheckResult:
        if not count:
            return CheckResult("recent_failures", Level.OK, "no failed backups in 7 days",
                               target=target)
        return CheckResult("recent_failures", Level.WARNING,
                           f"{count} failed backups in the last 7 days; latest: {last_error}",
                           "read the failed task logs; `amprenta-backup list --target "
                           f"{target}` shows each error", target)

    def _corrupt(self, target: str, ids: list[str]) -> CheckResult:
        if not ids:
            return CheckResult("corrupt_backups", Level.OK, "no corrupt backups found in 7 days",
                               target=target)
        return CheckResult("corrupt_backups", Level.CRITICAL,
                           f"{len(ids)} backups found corrupt in the last 7 days: "
                           f"{', '.join(ids[:5])}",
                           "do not restore them; take a new backup now and check the storage "
                           "for damage (weekly_verify marks backups corrupt)", target)

    def check_client(self, target: BackupTarget) -> list[CheckResult]:
        """The target answers (``target_reachable``), and ``pg_dump`` is not older than its
        server (``pg_dump_version``, only once it answered)."""
        try:
            conn = self.resolve(target)
        except BackupError as exc:
            return [CheckResult("target_reachable", Level.CRITICAL, str(exc),
                                "fix the target's Airflow connection or BACKUP_TARGETS",
                                target.name)]
        try:
            with psycopg.connect(**conn.connect_kwargs()) as db:
                row = db.execute("SHOW server_version").fetchone()
                need = server_major(db)
        except psycopg.Error as exc:
            return [CheckResult("target_reachable", Level.CRITICAL,
                                f"cannot connect to {conn.describe()}: "
                                f"{conn.redact(first_line(exc))}",
                                "check the server and the connection's host, port and "
                                "password", target.name)]
        server = str(row[0]) if row else "0"
        reached = CheckResult("target_reachable", Level.OK,
                              f"{conn.describe()} answers (PostgreSQL {server})",
                              target=target.name)
        try:
            client = for_server("pg_dump", need)
        except BackupError as exc:
            return [reached, CheckResult(
                "pg_dump_version", Level.CRITICAL, str(exc), f"install postgresql-client-"
                f"{need} (or newer), or list its bin folder in BACKUP_PG_BINDIRS", target.name)]
        return [reached, CheckResult("pg_dump_version", Level.OK,
                                     f"pg_dump {client.describe()} can dump server {server}",
                                     target=target.name)]


@dataclass(frozen=True)
class RtoObjective:
    """The restore objective (BACKUP_DRILL_RTO_SECONDS) and how far ahead to forecast it
    (BACKUP_RTO_FORECAST_DAYS)."""

    seconds: float
    horizon_days: int


def rto_forecast_result(f: RtoForecast) -> CheckResult:
    """The ``rto_forecast`` check of one forecast: a warning when the projected restore time
    reaches the objective within the horizon."""
    fit = (f"fit over {f.drills} drills: {f.fixed_seconds:.0f} s + {f.seconds_per_gib:.0f} s "
           f"per GiB; {f.size_bytes / 2**30:.2f} GiB now, growing "
           f"{f.growth_bytes_per_day / 2**20:.1f} MiB/day")
    days = f.days_to_objective
    if not f.crosses:
        return CheckResult("rto_forecast", Level.OK,
                           f"restore projected at {f.projected_seconds:.0f} s in "
                           f"{f.horizon_days} days, within the {f.objective_seconds:.0f} s "
                           f"objective ({fit})", target=f.target)
    when = "already" if days == 0 else f"in about {days:.0f} days"
    return CheckResult(
        "rto_forecast", Level.WARNING,
        f"restore of {f.target} is projected to reach the {f.objective_seconds:.0f} s RTO "
        f"objective {when} (now {f.now_seconds:.0f} s, {f.projected_seconds:.0f} s in "
        f"{f.horizon_days} days; {fit})",
        "make restores faster before the objective is missed (restore with more jobs, a "
        "faster drill server, PITR for the largest tables), archive old data, or revisit "
        "BACKUP_DRILL_RTO_SECONDS with the people who own the objective", f.target)


def check_clock(reading: ClockReading) -> CheckResult:
    """A warning when this worker's clock is more than :data:`SKEW_LIMIT` off the catalog's."""
    if reading.off(SKEW_LIMIT):
        log.warning("%s", reading.describe())
        return CheckResult("worker_clock", Level.WARNING, reading.describe(), reading.hint())
    return CheckResult("worker_clock", Level.OK,
                       f"within {SKEW_LIMIT.total_seconds() / 60:.0f} minutes of the catalog "
                       f"server's clock ({round(reading.skew.total_seconds(), 1) + 0.0:+.1f} s)")


def worst(results: Sequence[CheckResult]) -> Level:
    """The most severe status among ``results``."""
    order = [Level.OK, Level.WARNING, Level.CRITICAL]
    return max((r.status for r in results), key=order.index, default=Level.OK)


def save_results(catalog: Catalog, results: Sequence[CheckResult], as_of: datetime,
                 run_id: str | None = None) -> None:
    """Store the results in ``health_checks`` for dashboards."""
    with catalog.cursor() as cur:
        cur.executemany(_INSERT, [(as_of, run_id, r.target, r.name, str(r.status), r.detail,
                                   r.hint, r.value) for r in results])


def render(results: Sequence[CheckResult]) -> str:
    """Results as aligned lines, for logs and the terminal."""
    return "\n".join(f"{r.status.upper():8} {r.target or '(system)':24} {r.name:18} {r.detail}"
                     + (f"\n{'':8} {'':24} {'':18} hint: {r.hint}" if r.hint else "")
                     for r in results)


def health_alerts(results: Sequence[CheckResult], dag_id: str | None = None,
                  run_id: str | None = None, task_id: str | None = None,
                  log_url: str | None = None) -> list[Alert]:
    """One alert per target (and one for the system) with warnings or criticals; none if healthy.
    """
    by_target: dict[str | None, list[CheckResult]] = {}
    for result in results:
        if result.status != Level.OK:
            by_target.setdefault(result.target, []).append(result)
    alerts = []
    for target, bad in by_target.items():
        level = worst(bad)
        alerts.append(Alert(
            title=f"backup health {level} for {target or 'the backup system'}",
            notification_type=str(level), dag_id=dag_id, task_id=task_id, run_id=run_id,
            target=target, log_url=log_url,
            error="; ".join(f"{r.name} {r.status}: {r.detail}" for r in bad),
            details=tuple(f"Fix ({r.name}): {r.hint}" for r in bad if r.hint)))
    return alerts
