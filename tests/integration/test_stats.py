"""The operators' figures through Airflow's own metrics: Airflow's StatsD logger, sending to
a real UDP socket here, receives the same numbers as the Prometheus endpoint."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import statsd

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.dashboard import Dashboard
from amprenta_backup.core.dashboard.figures import figures
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage import Storage
from amprenta_backup.operators.stats import emit_figures
from amprenta_backup.sandbox.history import load_history, make_history


@pytest.fixture
def statsd_socket() -> Iterator[socket.socket]:
    """A UDP socket as a StatsD server, with Airflow's Stats sending to it."""
    from airflow.sdk._shared.observability.metrics.statsd_logger import get_statsd_logger
    from airflow.sdk.observability import stats

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)
    port = server.getsockname()[1]
    stats.initialize(factory=lambda: get_statsd_logger(
        stats_class=statsd.StatsClient, host="127.0.0.1", port=port, prefix="airflow"),
        export_legacy_names=False)
    try:
        yield server
    finally:
        stats.initialize(factory=stats.NoStatsLogger if hasattr(stats, "NoStatsLogger")
                         else lambda: None, export_legacy_names=True)
        server.close()


def _received(server: socket.socket, count: int) -> dict[str, float]:
    got: dict[str, float] = {}
    while len(got) < count:
        for line in server.recv(65536).decode().splitlines():
            name, rest = line.split(":", 1)
            got[name] = float(rest.split("|", 1)[0])
    return got


def test_every_figure_reaches_statsd_with_the_catalog_values(
    statsd_socket: socket.socket, catalog: Catalog, local_storage: Storage,
) -> None:
    load_history(catalog, make_history(targets=2, days=10, now=datetime.now(UTC), fail_every=4))
    engine = BackupEngine(BackupConfig(), storage=local_storage, catalog=catalog)
    expected = list(figures(Dashboard(catalog).targets()))
    sent = emit_figures(engine, logging.getLogger(__name__))
    assert sent == len(expected) > 0
    # per target, and once more without it (plain StatsD drops the tag): the last target's
    got = _received(statsd_socket, sent + len({f.name for f in expected}))
    for figure in expected:
        name = f"airflow.amprenta_backup.{figure.name}{'_total' if figure.counter else ''}"
        if figure.name.endswith("age_seconds"):  # measured again a moment later
            assert got[f"{name}.{figure.target}"] == pytest.approx(figure.value, abs=30)
        else:
            assert got[f"{name}.{figure.target}"] == figure.value
    assert got["airflow.amprenta_backup.failures_total.db000"] == sum(
        1 for d in range(10) if d % 4 == 0)
