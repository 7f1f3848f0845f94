"""DrillRecord: one restore drill, kept as a ``drill_runs`` row of the catalog (the audit trail)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.health import CheckResult, Level, worst


@dataclass
class DrillRecord:
    """What one drill restored where, how long it took, and what each check found.

    :param drill_id: the same on every try of one Airflow run and target
    :param target: the backup target drilled
    :param backup_id: the backup restored (None if none could be picked)
    :param backup_location: URI of the backup's folder; the reports go beside the dump
    :param strategy: ``latest``, ``random``, or ``given`` (the backup was named)
    :param window_start: the oldest a picked backup could start (None: no limit)
    :param window_end: backups started at or after this were not considered
    :param drill_conn_id: Postgres connection of the drill server
    :param scratch_database: the database the drill restores into and drops
    :param scratch_created: the drill created it (and marked it as its own)
    :param rto_seconds: restore plus checks, wall time: the achieved recovery time
    :param rto_objective_seconds: the objective it is held against
    :param passed: None while running; True when every check passed within the objective
    :param checks: each check and its result, in order
    :param error: why the drill could not complete, if it did not
    """

    drill_id: str
    target: str
    strategy: str
    window_end: datetime
    drill_conn_id: str
    scratch_database: str
    rto_objective_seconds: float
    started_at: datetime
    window_start: datetime | None = None
    backup_id: str | None = None
    backup_location: str | None = None
    drill_server: str = ""
    scratch_created: bool = False
    scratch_dropped_at: datetime | None = None
    restore_started_at: datetime | None = None
    restore_finished_at: datetime | None = None
    checks_finished_at: datetime | None = None
    finished_at: datetime | None = None
    restore_seconds: float | None = None
    checks_seconds: float | None = None
    rto_seconds: float | None = None
    passed: bool | None = None
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    report_uri: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    logical_date: datetime | None = None

    def set_check(self, result: CheckResult) -> None:
        """Add a check result, replacing an earlier one of the same name (a retried step)."""
        self.checks = [c for c in self.checks if c.name != result.name] + [result]

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == Level.CRITICAL]

    def decide(self) -> bool:
        """Passed: no critical check and no error; sets and returns :attr:`passed`."""
        self.passed = self.error is None and bool(self.checks) \
            and worst(self.checks) != Level.CRITICAL
        return self.passed

    @property
    def summary(self) -> str:
        """One line for logs, alerts and the task's failure message."""
        what = (f"restore drill {self.drill_id} of {self.target} (backup "
                f"{self.backup_id or 'none'} into {self.scratch_database})")
        rto = (f"RTO {self.rto_seconds:.1f} s of {self.rto_objective_seconds:g} s"
               if self.rto_seconds is not None else "RTO not measured")
        if self.passed:
            return f"{what} PASSED: {len(self.checks)} checks, {rto}"
        problems = [f"{c.name}: {c.detail}" for c in self.failures]
        if self.error and not problems:
            problems.append(self.error)
        state = "FAILED" if self.passed is False else "did not finish"
        return f"{what} {state}: {'; '.join(problems) or 'no check ran'} ({rto})"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [c.to_dict() for c in self.checks]
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data


_COLUMNS = {f.name: ("id" if f.name == "drill_id" else f.name) for f in fields(DrillRecord)}


def save(catalog: Catalog, record: DrillRecord) -> None:
    """Insert or replace the row of ``record``."""
    row = {column: getattr(record, name) for name, column in _COLUMNS.items()}
    row["checks"] = json.dumps([c.to_dict() for c in record.checks])
    catalog.upsert("drill_runs", row)


def load(catalog: Catalog, drill_id: str) -> DrillRecord | None:
    """The record of one drill, or None."""
    with catalog.cursor() as cur:
        cur.execute("SELECT * FROM drill_runs WHERE id = %s", (drill_id,))
        row = cur.fetchone()
    return _from_row(row) if row else None


def history(catalog: Catalog, target: str | None = None, limit: int = 20) -> list[DrillRecord]:
    """Drills, newest first, optionally of one target."""
    with catalog.cursor() as cur:
        cur.execute("SELECT * FROM drill_runs WHERE %(t)s::text IS NULL OR target = %(t)s "
                    "ORDER BY started_at DESC LIMIT %(n)s", {"t": target, "n": limit})
        return [_from_row(row) for row in cur.fetchall()]


def _from_row(row: dict[str, Any]) -> DrillRecord:
    values = {name: row[column] for name, column in _COLUMNS.items()}
    values["checks"] = [CheckResult(name=c["name"], status=Level(c["status"]),
                                    detail=c["detail"], hint=c.get("hint", ""),
                                    target=c.get("target")) for c in row["checks"] or []]
    return DrillRecord(**values)
