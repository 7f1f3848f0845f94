"""Retention policies over backup records, and a planner whose safety rules no policy overrides."""

from __future__ import annotations

import abc
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from amprenta_backup.core.constants import MIN_RETENTION_DAYS
from amprenta_backup.core.errors import ConfigError, PreconditionError
from amprenta_backup.core.models import RESTORABLE, BackupRecord, Status
from amprenta_backup.core.settings import BackupConfig

FOREVER = datetime.max.replace(tzinfo=UTC)


class Action(StrEnum):
    """What the plan does with one backup."""

    KEEP = "keep"
    DELETE = "delete"


@dataclass(frozen=True)
class Decision:
    """The plan for one backup record and the reason for it."""

    record: BackupRecord
    action: Action
    reason: str


class RetentionPolicy(abc.ABC):
    """One rule that names the backups it keeps; a backup that no policy keeps may go."""

    @abc.abstractmethod
    def keeps(self, records: Sequence[BackupRecord], now: datetime) -> dict[str, str]:
        """``backup_id -> why`` for the backups this policy keeps, out of one target's
        records sorted newest first."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What the policy keeps (``younger than 365 days`` ...)."""

    @abc.abstractmethod
    def describe_expired(self) -> str:
        """Why a backup falls outside this policy (``older than 365 days`` ...)."""


class AgePolicy(RetentionPolicy):
    """Keep every backup started less than ``days`` days ago (BACKUP_RETENTION_DAYS).

    :param days: the retention window in days
    """

    def __init__(self, days: int) -> None:
        if days < 1:
            raise ConfigError(f"AgePolicy needs 1 day or more, got {days}")
        self.days = days

    def keeps(self, records: Sequence[BackupRecord], now: datetime) -> dict[str, str]:
        cutoff = now - timedelta(days=self.days)
        return {r.backup_id: f"younger than {self.days} days" for r in records
                if r.started_at > cutoff}

    def describe(self) -> str:
        return f"keep {self.days} days"

    def describe_expired(self) -> str:
        return f"older than {self.days} days"


class KeepLastPolicy(RetentionPolicy):
    """Keep the newest ``count`` restorable backups of each target (BACKUP_KEEP_LAST).

    :param count: how many to keep per target
    """

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ConfigError(f"KeepLastPolicy needs a count of 1 or more, got {count}")
        self.count = count

    def keeps(self, records: Sequence[BackupRecord], now: datetime) -> dict[str, str]:
        restorable = [r for r in records if r.status in RESTORABLE][: self.count]
        return {r.backup_id: f"among the newest {self.count}" for r in restorable}

    def describe(self) -> str:
        return f"keep the last {self.count}"

    def describe_expired(self) -> str:
        return f"not among the newest {self.count}"


def _day(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%d}"


def _week(when: datetime) -> str:
    year, week, _ = when.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def _month(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m}"


class GFSPolicy(RetentionPolicy):
    """Grandfather-father-son: the newest restorable backup of each of the last ``daily``
    days, ``weekly`` ISO weeks and ``monthly`` months that have one (BACKUP_GFS).

    :param daily: days to keep one backup of
    :param weekly: weeks to keep one backup of
    :param monthly: months to keep one backup of
    """

    def __init__(self, daily: int = 0, weekly: int = 0, monthly: int = 0) -> None:
        if min(daily, weekly, monthly) < 0 or not (daily or weekly or monthly):
            raise ConfigError("GFSPolicy needs counts of 0 or more, at least one above 0")
        self.periods: list[tuple[str, int, Callable[[datetime], Hashable]]] = [
            ("daily", daily, _day), ("weekly", weekly, _week), ("monthly", monthly, _month)]

    def keeps(self, records: Sequence[BackupRecord], now: datetime) -> dict[str, str]:
        kept: dict[str, str] = {}
        restorable = [r for r in records if r.status in RESTORABLE]
        for label, count, period_of in self.periods:
            seen: set[Hashable] = set()
            for record in restorable:
                period = period_of(record.started_at)
                if period in seen:
                    continue
                if len(seen) == count:
                    break
                seen.add(period)
                why = f"{label} backup of {period}"
                kept[record.backup_id] = f"{kept[record.backup_id]}, {why}" \
                    if record.backup_id in kept else why
        return kept

    def _counts(self) -> str:
        return ",".join(f"{count}{label[0]}" for label, count, _ in self.periods if count)

    def describe(self) -> str:
        return f"keep GFS {self._counts()}"

    def describe_expired(self) -> str:
        return f"not a GFS keeper ({self._counts()})"


def policies_from_config(config: BackupConfig) -> list[RetentionPolicy]:
    """The policies ``BACKUP_RETENTION_DAYS``, ``BACKUP_KEEP_LAST`` and ``BACKUP_GFS`` ask for."""
    policies: list[RetentionPolicy] = [AgePolicy(config.retention_days)]
    if config.keep_last:
        policies.append(KeepLastPolicy(config.keep_last))
    if config.gfs is not None:
        policies.append(GFSPolicy(config.gfs.daily, config.gfs.weekly, config.gfs.monthly))
    return policies


@dataclass
class CleanupPlan:
    """A KEEP or DELETE decision, with its reason, for every backup not yet deleted.

    :param decisions: one per record, newest first within each target
    :param now: the time the plan was made for
    """

    decisions: list[Decision]
    now: datetime
    policies: list[str] = field(default_factory=list)

    @property
    def to_delete(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == Action.DELETE]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == Action.KEEP]

    def kept_reasons(self) -> dict[str, int]:
        """How many backups each kind of reason kept (dates and counts folded away)."""
        return dict(Counter(_reason_kind(d.reason) for d in self.kept))

    def kept_summary(self) -> str:
        """``kept 3 (2 daily backup, 1 newest completed backup)``, for a run's summary line."""
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.kept_reasons().items()))
        return f"kept {len(self.kept)} ({reasons or 'none'})"

    def render(self) -> str:
        """The plan as a table, for logs and ``--dry-run``."""
        lines = [f"retention plan at {self.now:%Y-%m-%d %H:%M:%S} UTC "
                 f"({'; '.join(self.policies) or 'no policies'}): "
                 f"{len(self.to_delete)} to delete, {len(self.kept)} to keep"]
        for d in self.decisions:
            lines.append(f"  {d.action.upper():6} {d.record.backup_id}  {d.record.target:24} "
                         f"{d.record.status:9} {d.record.started_at:%Y-%m-%d %H:%M}  {d.reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "policies": self.policies,
                "decisions": [{"backup_id": d.record.backup_id, "target": d.record.target,
                               "status": str(d.record.status), "action": str(d.action),
                               "reason": d.reason} for d in self.decisions]}


def _reason_kind(reason: str) -> str:
    """``daily backup of 2026-11-20, ...; younger than 365 days`` -> ``daily backup``."""
    first = reason.split("; ")[0].split(", ")[0]
    return re.sub(r" (of|until) .*$", "", first)


def _guard(record: BackupRecord, now: datetime, newest: Mapping[str, str],
           object_lock: Mapping[str, datetime]) -> str | None:
    """The never-delete rule that protects ``record``, if one does."""
    if record.status == Status.RUNNING:
        return "running: a backup in progress is never deleted"
    until = object_lock.get(record.backup_id)
    if until is not None and until > now:
        return ("under S3 Object Lock until released (legal hold)" if until == FOREVER
                else f"under S3 Object Lock until {until:%Y-%m-%d %H:%M}")
    if record.backup_id in newest:
        return newest[record.backup_id]
    if record.started_at > now - timedelta(days=MIN_RETENTION_DAYS):
        return f"younger than the {MIN_RETENTION_DAYS}-day safety floor"
    return None


def newest_good(records: Iterable[BackupRecord]) -> dict[str, str]:
    """``backup_id -> reason`` of the newest VERIFIED (else newest COMPLETED) backup per target."""
    best: dict[str, BackupRecord] = {}
    for record in records:
        if record.status not in RESTORABLE:
            continue
        current = best.get(record.target)
        rank = (record.status == Status.VERIFIED, record.started_at)
        if current is None or rank > (current.status == Status.VERIFIED, current.started_at):
            best[record.target] = record
    return {r.backup_id: f"newest {r.status} backup of {r.target}" for r in best.values()}


def plan_cleanup(records: Iterable[BackupRecord], policies: Sequence[RetentionPolicy],
                 now: datetime, object_lock: Mapping[str, datetime] | None = None
                 ) -> CleanupPlan:
    """Decide KEEP or DELETE for every record not already deleted.

    A backup is deleted only when no policy keeps it and no safety rule protects it: RUNNING
    backups, backups under S3 Object Lock, the newest VERIFIED (else COMPLETED) backup of each
    target, and anything younger than the 7-day floor are always kept.

    :param records: backup records of any targets and statuses
    :param policies: at least one policy
    :param now: the time to plan for (timezone-aware)
    :param object_lock: ``backup_id -> retain-until`` for backups whose objects are locked
    """
    if not policies:
        raise PreconditionError("a retention plan needs at least one policy (AgePolicy ...)")
    if now.tzinfo is None:
        raise PreconditionError("plan_cleanup needs a timezone-aware time, e.g. utcnow()")
    live = [r for r in records if r.status != Status.DELETED]
    by_target: dict[str, list[BackupRecord]] = defaultdict(list)
    for record in sorted(live, key=lambda r: (r.target, r.started_at), reverse=True):
        by_target[record.target].append(record)
    newest = newest_good(live)
    locks = object_lock or {}
    expired = "; ".join(p.describe_expired() for p in policies)
    decisions: list[Decision] = []
    for target in sorted(by_target):
        group = by_target[target]
        reasons: dict[str, list[str]] = defaultdict(list)
        for policy in policies:
            for backup_id, why in policy.keeps(group, now).items():
                reasons[backup_id].append(why)
        for record in group:
            guard = _guard(record, now, newest, locks)
            if guard is not None:
                decisions.append(Decision(record, Action.KEEP, guard))
            elif reasons.get(record.backup_id):
                decisions.append(Decision(record, Action.KEEP,
                                          "; ".join(reasons[record.backup_id])))
            else:
                decisions.append(Decision(record, Action.DELETE, expired))
    return CleanupPlan(decisions, now, [p.describe() for p in policies])
