"""The dashboard's per-target figures sent through Airflow's own metrics (``Stats``).

Whatever the deployment configures receives them: StatsD (``[metrics] statsd_on``),
Datadog, or OpenTelemetry (``[metrics] otel_on``). Each figure goes out twice, as Airflow
does with its own metrics: ``amprenta_backup.<figure>`` with a ``target`` tag (OpenTelemetry,
Datadog, InfluxDB-style StatsD) and ``amprenta_backup.<figure>.<target>`` for plain StatsD,
which has no tags. The figures and names are those of the Prometheus endpoint
(core/dashboard/figures.py): one catalog statement, the same numbers in both places.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from amprenta_backup.core.dashboard.figures import PREFIX, figures

if TYPE_CHECKING:
    from amprenta_backup.core.engine import BackupEngine


def _stats() -> Any:
    try:
        from airflow.sdk.observability.stats import Stats  # Airflow 3.3
    except ImportError:  # Airflow 3.1 and 3.2
        from airflow.stats import Stats
    return Stats


def emit_figures(engine: BackupEngine, log: logging.Logger | Any,
                 target: str | None = None) -> int:
    """Gauge every figure of ``target`` (all targets when None); returns how many were sent.
    Anything that goes wrong (the catalog unreachable ...) is logged, never a task failure."""
    try:
        state = engine.dashboard().targets()
        stats, sent = _stats(), 0
        for figure in figures(state):
            if target is not None and figure.target != target:
                continue
            name = f"{PREFIX}.{figure.name}{'_total' if figure.counter else ''}"
            stats.gauge(name, figure.value, tags={"target": figure.target})
            stats.gauge(f"{name}.{figure.target}", figure.value)
            sent += 1
    except Exception as exc:  # metrics never fail (or mask) a backup: BackupError and all
        log.warning("backup figures not sent to Airflow's metrics: %s", exc)
        return 0
    log.info("%d backup figures sent to Airflow's metrics", sent)
    return sent
