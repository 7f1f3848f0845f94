"""The per-target figures monitoring stacks scrape, named like the peers' exporters
(pgBackRest's ``..._since_last_completion_seconds``, WAL-G's ``..._pitr_window_seconds``).

One list for both outlets: the plugin's Prometheus endpoint and Airflow's Stats (StatsD or
OpenTelemetry, as the deployment is configured), so both always carry the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

PREFIX = "amprenta_backup"


@dataclass(frozen=True)
class Figure:
    """One figure of one target.

    :param name: the metric's name without :data:`PREFIX` (``last_success_age_seconds``)
    :param target: the backup target (the ``target`` label)
    :param value: the figure
    :param counter: a running total (Prometheus ``counter``) rather than a gauge
    """

    name: str
    target: str
    value: float
    counter: bool = False


def _get(*path: str) -> Callable[[dict[str, Any]], Any]:
    def read(state: dict[str, Any]) -> Any:
        value: Any = state
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value
    return read


# name -> (help, how to read it from a target's state, counter?)
FIGURES: dict[str, tuple[str, Callable[[dict[str, Any]], Any], bool]] = {
    "last_success_age_seconds": (
        "seconds since the newest restorable backup completed",
        _get("last_success", "age_seconds"), False),
    "last_verify_age_seconds": (
        "seconds since the last verification", _get("last_verify", "age_seconds"), False),
    "last_drill_rto_seconds": (
        "recovery time the last restore drill measured (restore plus checks)",
        _get("last_drill", "rto_seconds"), False),
    "pitr_window_seconds": (
        "how far back a point-in-time restore can go (oldest restorable base backup to now)",
        _get("pitr", "window_seconds"), False),
    "wal_archive_lag_seconds": (
        "current RPO: how long WAL has waited to be archived (daily_health's last reading)",
        _get("pitr", "wal_archive_lag_seconds"), False),
    "stored_bytes": ("bytes of the target's backups in storage", _get("stored_bytes"), False),
    "failures": ("backups of the target that failed, all time", _get("failures_total"), True),
}


def figures(targets: list[dict[str, Any]]) -> Iterator[Figure]:
    """The figures of each target's state (:meth:`Dashboard.targets`); a figure a target
    does not have yet (no drill, no PITR) is left out, not reported as 0."""
    for state in targets:
        for name, (_, read, counter) in FIGURES.items():
            value = read(state)
            if value is not None:
                yield Figure(name, state["target"], float(value), counter)
