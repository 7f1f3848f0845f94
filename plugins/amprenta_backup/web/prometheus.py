"""``GET /api/v1/backup/metrics``: the per-target figures in Prometheus' text format,
rendered by ``prometheus_client`` from one catalog statement per scrape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from amprenta_backup.core.dashboard.figures import FIGURES, PREFIX, figures
from amprenta_backup.web.deps import EngineDep

router = APIRouter(tags=["metrics"])


class _Collector:
    """The figures of one scrape, as metric families with a ``target`` label."""

    def __init__(self, targets: list[dict[str, Any]]) -> None:
        self.targets = targets

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for name, (help_text, _, counter) in FIGURES.items():
            kind = CounterMetricFamily if counter else GaugeMetricFamily
            families[name] = kind(f"{PREFIX}_{name}", help_text, labels=["target"])
        for figure in figures(self.targets):
            families[figure.name].add_metric([figure.target], figure.value)
        yield from families.values()


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def prometheus_metrics(engine: EngineDep) -> Response:
    """Per-target backup figures for Prometheus (text exposition format 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    board = engine.dashboard()
    with board.session():  # the clock and the state in one transaction
        registry.register(_Collector(board.targets()))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
