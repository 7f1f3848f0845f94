"""One clock for every worker: the catalog server's.

Retention, the 7-day floor and "the newest backup" compare times written by many workers; a
worker whose clock is a year off would make a fresh backup look old (deletable at once) or a
year-old one look newest (kept forever). So backup times and "now" come from the catalog
server, and a worker whose own clock differs by more than :data:`SKEW_LIMIT` is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

SKEW_LIMIT = timedelta(minutes=5)


@dataclass(frozen=True)
class ClockReading:
    """The catalog server's time and this worker's, read at the same moment.

    :param server: the catalog server's ``clock_timestamp()``
    :param local: this process's clock, midway through the query
    """

    server: datetime
    local: datetime

    @property
    def skew(self) -> timedelta:
        """How far this worker's clock is ahead of the server's (negative: behind)."""
        return self.local - self.server

    def off(self, limit: timedelta = SKEW_LIMIT) -> bool:
        """Whether the worker's clock differs from the server's by more than ``limit``."""
        return abs(self.skew) > limit

    def describe(self) -> str:
        """``this worker's clock is 400 days, 0:00:03 behind the catalog server's ...``."""
        way = "ahead of" if self.skew > timedelta(0) else "behind"
        return (f"this worker's clock is {_span(abs(self.skew))} {way} the catalog server's "
                f"(worker {self.local:%Y-%m-%d %H:%M:%S} UTC, catalog server "
                f"{self.server:%Y-%m-%d %H:%M:%S} UTC); backup times and retention use the "
                "catalog server's clock")

    @staticmethod
    def hint() -> str:
        return ("synchronise the worker's clock (NTP: timedatectl set-ntp true, chrony); "
                "retention is unaffected, but logs and Airflow schedules are off")


def _span(delta: timedelta) -> str:
    """``400 days, 0:00:03``, to the nearest second."""
    return str(timedelta(seconds=round(delta.total_seconds())))
