"""The page's charts: server-rendered SVG (pygal), no script and nothing fetched, so the page
works offline. Each point's value is in its ``<desc class="value">``, in human units.

pygal takes tens of milliseconds per chart, more than the catalog's SQL: each chart is kept
(:func:`_memo`) keyed by the points it draws, so a chart is drawn again only when its points
change (a new backup, a new day), and never shows points older than its data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, TypeVar

import pygal
from pygal.style import Style

from amprenta_backup.core.dashboard import POINTS_BY_DAY
from amprenta_backup.web import units

TOP_TARGETS = 8  # lines per chart beyond the total; the rest are summed as "others"
STYLE = Style(background="transparent", plot_background="transparent",
              font_family="system-ui, sans-serif", colors=(
                  "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2",
                  "#ca8a04", "#db2777", "#4b5563", "#65a30d"))
SEVERITY_COLORS = {"critical": "#dc2626", "warning": "#ea580c"}


Drawn = TypeVar("Drawn")
CHARTS_KEPT = 64  # drawn charts kept per chart function (per days= window and data)


def _memo(draw: Callable[..., Drawn]) -> Callable[..., Drawn]:
    """``draw`` kept per distinct JSON of its arguments (plain dicts, lists and numbers)."""
    @lru_cache(maxsize=CHARTS_KEPT)
    def drawn(key: str) -> Drawn:
        return draw(*json.loads(key))

    @wraps(draw)
    def cached(*args: Any) -> Drawn:
        return drawn(json.dumps(args, sort_keys=True))
    return cached


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


def week_ends(count: int) -> list[int]:
    """The days a chart of ``count`` days shows: each one up to :data:`POINTS_BY_DAY` days,
    else the last day of each week, counted back from the newest."""
    if count <= POINTS_BY_DAY:
        return list(range(count))
    return list(range(count - 1, -1, -7))[::-1]


@_memo
def success_rate(rates: dict[str, Any]) -> str:
    """Success rate in the window, per target (bars, in %)."""
    chart = _chart(pygal.HorizontalBar, f"Success rate, last {rates['days']} days",
                   range=(0, 100), value_formatter=lambda v: f"{v:.2f} %", show_legend=False)
    targets = sorted(rates["targets"], key=lambda t: t["success_rate"])
    chart.x_labels = [t["target"] for t in targets]
    chart.add("success rate", [{"value": t["success_rate"],
                                "label": f"{t['succeeded']} of {t['total']}"} for t in targets])
    return _render(chart, "success_rate")


@_memo
def storage(data: dict[str, Any]) -> str:
    """Bytes held in storage per day: the total, the copy storage's total, and the largest
    targets."""
    ends = week_ends(len(data["days"]))  # a balance: the held bytes at each shown day's end
    chart = _chart(pygal.Line, "Storage used", value_formatter=units.size, fill=False)
    chart.x_labels = [data["days"][i] for i in ends]
    chart.x_labels_major = _every(chart.x_labels)
    chart.add("total", [data["total"][i] for i in ends])
    if data["copy"]["targets"]:
        chart.add("copy storage (total)", [data["copy"]["total"][i] for i in ends],
                  stroke_style={"dasharray": "6, 4"})
    ranked = sorted(data["targets"].items(), key=lambda kv: -(kv[1][-1] if kv[1] else 0))
    for target, values in ranked[:TOP_TARGETS]:
        chart.add(target, [values[i] for i in ends])
    return _render(chart, "storage")


@_memo
def duration_size(points: list[dict[str, Any]]) -> list[str]:
    """Average backup duration and total stored size of the successful backups, per day (or
    week: :meth:`Dashboard.trend_points` aggregates them in SQL)."""
    charts = []
    for name, title, field, formatter in (
            ("duration", "Backup duration (average per day)", "duration_seconds", units.duration),
            ("size", "Backup size (stored per day)", "stored_bytes", units.size)):
        series = [(p["day"], p[field]) for p in points if p[field] is not None]
        chart = _chart(pygal.Line, title, value_formatter=formatter, show_legend=False)
        chart.x_labels = [day for day, _ in series]
        chart.x_labels_major = _every(chart.x_labels)
        chart.add(name, [value for _, value in series])
        charts.append(_render(chart, name))
    return charts


@_memo
def rto(points: list[dict[str, Any]], objective: float) -> str:
    """The longest RTO the drills measured per day or week, against the objective."""
    measured = [p["rto_seconds"] for p in points]
    objectives = [p["rto_objective_seconds"] or objective for p in points]
    chart = _chart(pygal.Line, "Recovery time (drills) against the objective",
                   value_formatter=units.duration,
                   range=(0, 1.1 * max([*measured, *objectives] or [objective])))
    chart.x_labels = [f"{p['day']} ({p['drills']} drills)" if p["drills"] > 1 else p["day"]
                      for p in points]
    chart.x_labels_major = _every(chart.x_labels)
    chart.add("RTO", measured)
    chart.add("objective", objectives, dots_size=1.5, stroke_style={"dasharray": "6, 4"})
    return _render(chart, "rto")


@_memo
def alerts(rows: list[dict[str, Any]], days: list[str]) -> str:
    """Warning and critical health results per day, or per week ending on the shown day
    beyond :data:`POINTS_BY_DAY` days (stacked bars)."""
    ends = week_ends(len(days))
    per = "day" if len(ends) == len(days) else "week"
    chart = _chart(pygal.StackedBar, f"Alerts per {per}", value_formatter=lambda v: f"{v:.0f}",
                   style=Style(**{**STYLE.to_dict(), "colors": tuple(SEVERITY_COLORS.values())}))
    chart.x_labels = [days[i] for i in ends]
    chart.x_labels_major = _every(chart.x_labels)
    counts = {(r["day"], r["severity"]): r["alerts"] for r in rows}
    spans = [days[start + 1:end + 1] for start, end in zip([-1, *ends], ends, strict=False)]
    sums = {(i, s): sum(counts.get((d, s), 0) for d in span)
            for i, span in enumerate(spans) for s in SEVERITY_COLORS}
    most = max([sum(sums[(i, s)] for s in SEVERITY_COLORS) for i in range(len(spans))] + [1])
    chart.y_labels = list(range(0, most + 1, max(1, most // 8)))
    for severity in SEVERITY_COLORS:
        chart.add(severity, [sums[(i, severity)] or None for i in range(len(spans))])
    return _render(chart, "alerts")
