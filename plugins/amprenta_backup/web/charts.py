"""The page's charts: server-rendered SVG (pygal), no script and nothing fetched, so the page
works offline. Each point's value is in its ``<desc class="value">``, in human units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pygal
from pygal.style import Style

from amprenta_backup.web import units

TOP_TARGETS = 8  # lines per chart beyond the total; the rest are summed as "others"
STYLE = Style(background="transparent", plot_background="transparent",
              font_family="system-ui, sans-serif", colors=(
                  "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2",
                  "#ca8a04", "#db2777", "#4b5563", "#65a30d"))
SEVERITY_COLORS = {"critical": "#dc2626", "warning": "#ea580c"}


def _chart(kind: Callable[..., Any], title: str, **options: Any) -> Any:
    defaults = {"js": [], "style": STYLE, "width": 760, "height": 300, "title": title,
                "x_label_rotation": 30, "show_minor_x_labels": False, "legend_at_bottom": True,
                "legend_at_bottom_columns": 5, "truncate_legend": 24, "dots_size": 2.5,
                "no_data_text": "no data yet", "print_values": False}
    return kind(**{**defaults, **options})


def _render(chart: Any, name: str) -> str:
    svg = chart.render(is_unicode=True, disable_xml_declaration=True)
    return f'<figure class="chart" data-chart="{name}">{svg}</figure>'


def _every(labels: list[str], most: int = 10) -> list[str]:
    step = max(1, len(labels) // most)
    return labels[::step]


def success_rate(rates: dict[str, Any]) -> str:
    """Success rate in the window, per target (bars, in %)."""
    chart = _chart(pygal.HorizontalBar, f"Success rate, last {rates['days']} days",
                   range=(0, 100), value_formatter=lambda v: f"{v:.2f} %", show_legend=False)
    targets = sorted(rates["targets"], key=lambda t: t["success_rate"])
    chart.x_labels = [t["target"] for t in targets]
    chart.add("success rate", [{"value": t["success_rate"],
                                "label": f"{t['succeeded']} of {t['total']}"} for t in targets])
    return _render(chart, "success_rate")


def storage(data: dict[str, Any]) -> str:
    """Bytes held in storage per day: the total, and the largest targets."""
    chart = _chart(pygal.Line, "Storage used", value_formatter=units.size, fill=False)
    chart.x_labels = data["days"]
    chart.x_labels_major = _every(data["days"])
    chart.add("total", data["total"])
    ranked = sorted(data["targets"].items(), key=lambda kv: -(kv[1][-1] if kv[1] else 0))
    for target, values in ranked[:TOP_TARGETS]:
        chart.add(target, values)
    return _render(chart, "storage")


def _per_day(trend: list[dict[str, Any]], field: str, combine: str) -> dict[str, float]:
    days: dict[str, list[float]] = {}
    for point in trend:
        if point[field] is not None:
            days.setdefault(point["started_at"][:10], []).append(float(point[field]))
    if combine == "sum":
        return {d: sum(v) for d, v in sorted(days.items())}
    return {d: sum(v) / len(v) for d, v in sorted(days.items())}


def duration_size(trend: list[dict[str, Any]]) -> list[str]:
    """Average backup duration and total stored size of the successful backups, per day."""
    duration = _per_day(trend, "duration_seconds", "avg")
    size = _per_day(trend, "stored_bytes", "sum")
    charts = []
    for name, title, series, formatter in (
            ("duration", "Backup duration (average per day)", duration, units.duration),
            ("size", "Backup size (stored per day)", size, units.size)):
        chart = _chart(pygal.Line, title, value_formatter=formatter, show_legend=False)
        chart.x_labels = list(series)
        chart.x_labels_major = _every(list(series))
        chart.add(name, list(series.values()))
        charts.append(_render(chart, name))
    return charts


def rto(drills: list[dict[str, Any]], objective: float) -> str:
    """Each drill's measured RTO against the objective."""
    measured = [d["rto_seconds"] for d in drills]
    objectives = [d["rto_objective_seconds"] or objective for d in drills]
    chart = _chart(pygal.Line, "Recovery time (drills) against the objective",
                   value_formatter=units.duration,
                   range=(0, 1.1 * max([*measured, *objectives] or [objective])))
    chart.x_labels = [f"{d['started_at'][:10]} {d['target']}" for d in drills]
    chart.x_labels_major = _every(chart.x_labels)
    chart.add("RTO", measured)
    chart.add("objective", objectives, dots_size=1.5, stroke_style={"dasharray": "6, 4"})
    return _render(chart, "rto")


def alerts(rows: list[dict[str, Any]], days: list[str]) -> str:
    """Warning and critical health results per day (stacked bars)."""
    chart = _chart(pygal.StackedBar, "Alerts per day", value_formatter=lambda v: f"{v:.0f}",
                   style=Style(**{**STYLE.to_dict(), "colors": tuple(SEVERITY_COLORS.values())}))
    chart.x_labels = days
    chart.x_labels_major = _every(days)
    counts = {(r["day"], r["severity"]): r["alerts"] for r in rows}
    most = max([sum(counts.get((d, s), 0) for s in SEVERITY_COLORS) for d in days] + [1])
    chart.y_labels = list(range(0, most + 1, max(1, most // 8)))
    for severity in SEVERITY_COLORS:
        chart.add(severity, [counts.get((day, severity)) for day in days])
    return _render(chart, "alerts")
