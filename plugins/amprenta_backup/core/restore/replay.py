"""Replay plan: the DAG runs of a database's writers whose data a restore to a point took away.

A restore to a point T (an older backup: its snapshot time; point-in-time recovery: the
target time) keeps what was written up to T. A writer DAG's run lost its writes when it ran
after T: its data interval (or, for a run without one, its ``run_after``) ends after T, or it
was still writing at T (a late, retried or backfilled run of an older interval wrote after
T too). Runs that had not started when the plan was made are not lost: they will write into
the restored database. Re-running exactly the lost runs (clearing them, in the order their
data intervals end) puts the rows back for pipelines that are idempotent per run, which is
how Airflow asks DAGs to be written.

The adapter (``hooks/airflow_api.py``) reads the runs from ``/api/v2/dags/{id}/dagRuns`` and
clears them; this module only decides, so it is tested without Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from amprenta_backup.core.errors import ConfigError

RESTORE = "restore"
PITR_RESTORE = "pitr_restore"
PITR_DRILL = "pitr_drill"
KINDS = (RESTORE, PITR_RESTORE, PITR_DRILL)


def parse_time(value: str | datetime | None) -> datetime | None:
    """An aware UTC datetime from Airflow's JSON (ISO 8601, ``Z`` allowed), or None."""
    if value is None or value == "":
        return None
    found = value if isinstance(value, datetime) else datetime.fromisoformat(
        str(value).replace("Z", "+00:00"))
    if found.tzinfo is None:
        raise ConfigError(f"time {value!r} has no time zone: give one (e.g. +00:00)")
    return found.astimezone(UTC)


def required_time(value: str | datetime | None, what: str) -> datetime:
    """:func:`parse_time` of a value that must be there (``what`` names it)."""
    found = parse_time(value)
    if found is None:
        raise ConfigError(f"{what} is missing: give an ISO 8601 time with a zone")
    return found


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class WriterRun:
    """One DAG run of a writer, as Airflow's REST API describes it.

    :param dag_id: the writer DAG
    :param run_id: the run
    :param state: ``success``, ``failed``, ``running`` ...
    :param run_after: when it was due to run (every Airflow 3 run has one)
    :param data_interval_start: start of its data interval (None for a manual run without one)
    :param data_interval_end: end of its data interval
    :param logical_date: its logical date (None for a manual run without one)
    :param start_date: when it started (None: not started yet)
    :param end_date: when it finished (None: not finished)
    :param run_type: ``scheduled``, ``manual``, ``backfill`` ...
    """

    dag_id: str
    run_id: str
    state: str
    run_after: datetime
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    logical_date: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    run_type: str = ""

    @property
    def data_until(self) -> datetime:
        """The end of the data it writes: its data interval's end, else its ``run_after``."""
        return self.data_interval_end or self.run_after

    def lost_after(self, point: datetime) -> str | None:
        """Why this run's writes are not in a database restored to ``point``, or None."""
        if self.start_date is None:
            return None
        if self.data_until > point:
            what = "data interval ends" if self.data_interval_end else "run after"
            return f"{what} {self.data_until:%Y-%m-%d %H:%M:%S} UTC, after the point"
        if self.end_date is None or self.end_date > point:
            return "still writing at the point (an older interval run late)"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "state": self.state,
                "run_type": self.run_type, "run_after": self.run_after.isoformat(),
                "data_interval_start": _iso(self.data_interval_start),
                "data_interval_end": _iso(self.data_interval_end),
                "logical_date": _iso(self.logical_date), "start_date": _iso(self.start_date),
                "end_date": _iso(self.end_date)}

    @classmethod
    def from_rest(cls, run: Mapping[str, Any]) -> WriterRun:
        """From one item of ``/api/v2/dags/{dag_id}/dagRuns`` (or :meth:`to_dict`)."""
        run_after = required_time(run.get("run_after"), f"run_after of run {run!r}")
        return cls(dag_id=str(run["dag_id"]), run_id=str(run.get("dag_run_id") or run["run_id"]),
                   state=str(run.get("state") or ""), run_type=str(run.get("run_type") or ""),
                   run_after=run_after,
                   data_interval_start=parse_time(run.get("data_interval_start")),
                   data_interval_end=parse_time(run.get("data_interval_end")),
                   logical_date=parse_time(run.get("logical_date")),
                   start_date=parse_time(run.get("start_date")),
                   end_date=parse_time(run.get("end_date")))


@dataclass(frozen=True)
class LostRun:
    """A run to redo and why."""

    run: WriterRun
    reason: str

    def line(self) -> str:
        return f"{self.run.dag_id} {self.run.run_id} ({self.run.state}; {self.reason})"


@dataclass(frozen=True)
class ReplayPlan:
    """The runs a restore to ``point`` took away, for the log, the catalog and the approval.

    :param kind: what restored (:data:`KINDS`)
    :param target: the database's label (``pg_main`` or ``pg_main.analytics``)
    :param database: the database restored
    :param point: what the database holds data up to
    :param point_source: where the point comes from (``backup X taken ...``, ``PITR target``)
    :param writers: the writer DAGs that were asked for their runs
    :param runs: the lost runs, in the order their data ends
    :param known: False when Airflow's runs could not be read
    :param made_at: when the plan was made (runs starting later are not lost)
    """

    kind: str
    target: str
    database: str
    point: datetime
    point_source: str
    writers: tuple[str, ...]
    runs: tuple[LostRun, ...] = ()
    known: bool = True
    made_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def count(self) -> int:
        return len(self.runs)

    def headline(self) -> str:
        """``N runs to redo``: the RPO as work, with how many DAGs and since when."""
        if not self.known:
            return (f"runs to redo unknown: Airflow's DAG runs were not read (set "
                    f"BACKUP_AIRFLOW_API_CONN_ID); database {self.database!r} holds data up to "
                    f"{self.point:%Y-%m-%d %H:%M:%S} UTC")
        dags = len({r.run.dag_id for r in self.runs})
        return (f"{self.count} run{'s' if self.count != 1 else ''} to redo"
                f" ({dags} of {len(self.writers)} writer DAG{'s' if len(self.writers) != 1 else ''}"
                f") since {self.point:%Y-%m-%d %H:%M:%S} UTC ({self.point_source})")

    def lines(self) -> list[str]:
        return [self.headline(), *(f"redo {lost.line()}" for lost in self.runs)]

    def text(self) -> str:
        return "\n".join(f"replay {line}" for line in self.lines())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "database": self.database,
                "point": self.point.isoformat(), "point_source": self.point_source,
                "writers": list(self.writers), "known": self.known, "count": self.count,
                "made_at": self.made_at.isoformat(), "headline": self.headline(),
                "lines": self.lines(),
                "runs": [{**lost.run.to_dict(), "reason": lost.reason} for lost in self.runs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplayPlan:
        return cls(kind=data["kind"], target=data["target"], database=data["database"],
                   point=required_time(data["point"], "the replay plan's point"),
                   point_source=data["point_source"],
                   writers=tuple(data["writers"]), known=bool(data["known"]),
                   made_at=required_time(data["made_at"], "the replay plan's made_at"),
                   runs=tuple(LostRun(WriterRun.from_rest(r), r["reason"])
                              for r in data["runs"]))


def plan_replay(kind: str, target: str, database: str, point: datetime, point_source: str,
                writers: Sequence[str], runs: Iterable[WriterRun] | None,
                now: datetime | None = None) -> ReplayPlan:
    """The runs of ``writers`` lost by restoring ``database`` to ``point``.

    :param runs: every run of the writers Airflow knows, or None when they could not be read
    :param now: when the plan is made (default: now); later runs are not lost
    """
    if kind not in KINDS:
        raise ConfigError(f"replay plan kind {kind!r} is not one of {', '.join(KINDS)}")
    made_at = now or datetime.now(UTC)
    point = point.astimezone(UTC)
    lost = [LostRun(run, why) for run in runs or () if run.dag_id in writers
            and run.start_date is not None and run.start_date <= made_at
            and (why := run.lost_after(point))]
    lost.sort(key=lambda x: (x.run.data_until, x.run.dag_id, x.run.run_id))
    return ReplayPlan(kind=kind, target=target, database=database, point=point,
                      point_source=point_source, writers=tuple(sorted(writers)),
                      runs=tuple(lost), known=runs is not None, made_at=made_at)
