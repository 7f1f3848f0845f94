"""Forecast the RTO: how long a restore of a target will take when its database has grown.

The drills' history gives pairs (database size, restore seconds) per target; a least-squares
line through them says how restore time grows with size. The backups of the last weeks give
the growth of the database per day. Together: the restore time projected ``horizon_days``
ahead, and the day it crosses the objective, so ``daily_health`` can warn before a drill
fails its objective rather than after.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from amprenta_backup.core.catalog import Catalog

MIN_DRILLS = 3  # fewer points than this fit no line worth trusting
GROWTH_WINDOW = timedelta(days=90)

_DRILLS = """
SELECT b.raw_size_bytes AS size, d.restore_seconds AS seconds
FROM drill_runs d JOIN backup_records b ON b.id = d.backup_id
WHERE d.target = %(target)s AND d.passed AND d.restore_seconds IS NOT NULL
  AND b.raw_size_bytes IS NOT NULL AND d.started_at <= %(as_of)s
ORDER BY d.started_at DESC LIMIT 50
"""

_SIZES = """
SELECT started_at, raw_size_bytes AS size FROM backup_records
WHERE target = %(target)s AND kind = 'logical' AND raw_size_bytes IS NOT NULL
  AND status IN ('completed', 'verified', 'deleted') AND error IS NULL
  AND started_at > %(since)s AND started_at <= %(as_of)s
ORDER BY started_at
"""


@dataclass(frozen=True)
class RtoForecast:
    """The projected restore time of one target.

    :param target: the backup target
    :param drills: how many passed drills the fit used
    :param fixed_seconds: the fit's restore time at size zero (connections, DDL, indexes)
    :param seconds_per_gib: the fit's restore seconds per GiB of raw dump
    :param size_bytes: the newest backup's raw size
    :param growth_bytes_per_day: the database's growth (least squares over 90 days of backups)
    :param horizon_days: how far ahead the projection looks
    :param objective_seconds: the RTO objective
    """

    target: str
    drills: int
    fixed_seconds: float
    seconds_per_gib: float
    size_bytes: int
    growth_bytes_per_day: float
    horizon_days: int
    objective_seconds: float

    def seconds_at(self, size_bytes: float) -> float:
        return self.fixed_seconds + self.seconds_per_gib * size_bytes / 2**30

    @property
    def now_seconds(self) -> float:
        return self.seconds_at(self.size_bytes)

    @property
    def projected_seconds(self) -> float:
        """The restore time ``horizon_days`` ahead at the current growth."""
        return self.seconds_at(self.size_bytes + self.growth_bytes_per_day * self.horizon_days)

    @property
    def days_to_objective(self) -> float | None:
        """Days until the projected restore time reaches the objective; 0 if it already has,
        None if it never will at the current growth."""
        if self.now_seconds >= self.objective_seconds:
            return 0.0
        if self.seconds_per_gib <= 0 or self.growth_bytes_per_day <= 0:
            return None
        size = (self.objective_seconds - self.fixed_seconds) / self.seconds_per_gib * 2**30
        return (size - self.size_bytes) / self.growth_bytes_per_day

    @property
    def crosses(self) -> bool:
        """The objective is reached within the horizon."""
        days = self.days_to_objective
        return days is not None and days <= self.horizon_days


def forecast(catalog: Catalog, target: str, objective_seconds: float, horizon_days: int,
             as_of: datetime) -> RtoForecast | None:
    """The forecast of one target, or None when the history is too short to fit
    (fewer than :data:`MIN_DRILLS` passed drills of different sizes, or no backups)."""
    with catalog.cursor() as cur:
        cur.execute(_DRILLS, {"target": target, "as_of": as_of})
        drills = [(float(r["size"]), float(r["seconds"])) for r in cur.fetchall()]
        cur.execute(_SIZES, {"target": target, "as_of": as_of, "since": as_of - GROWTH_WINDOW})
        sizes = [(r["started_at"], float(r["size"])) for r in cur.fetchall()]
    if len(drills) < MIN_DRILLS or len({size for size, _ in drills}) < 2 or not sizes:
        return None
    fit = statistics.linear_regression([s / 2**30 for s, _ in drills], [t for _, t in drills])
    growth = 0.0
    if len({when for when, _ in sizes}) >= 2:
        days = [(when - sizes[0][0]).total_seconds() / 86400 for when, _ in sizes]
        growth = statistics.linear_regression(days, [s for _, s in sizes]).slope
    return RtoForecast(target=target, drills=len(drills), fixed_seconds=fit.intercept,
                       seconds_per_gib=fit.slope, size_bytes=int(sizes[-1][1]),
                       growth_bytes_per_day=growth, horizon_days=horizon_days,
                       objective_seconds=objective_seconds)
