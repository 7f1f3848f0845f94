"""The page's charts over a long window: a point per week, the newest day always shown, and
the numbers each point prints are the balance (storage) or the week's sum (alerts)."""

from __future__ import annotations

import re
from datetime import date, timedelta

from amprenta_backup.web import charts, units


def _values(svg: str, serie: int = 0) -> list[str]:
    """What one serie printed as its points' values (as the browser test reads them)."""
    blocks = [part.split('class="series serie-')[0]
              for part in svg.split(f'class="series serie-{serie} ')[1:]]
    return [v for block in blocks for v in re.findall(r'<desc class="value">([^<]*)</desc>',
                                                       block)]


def _days(count: int) -> list[str]:
    first = date(2026, 1, 1)
    return [(first + timedelta(days=i)).isoformat() for i in range(count)]


def test_a_year_of_storage_is_charted_weekly_ending_on_the_newest_day() -> None:
    days = _days(366)
    held = [1_000_000 * (i + 1) for i in range(366)]
    data = {"days": days, "targets": {"db000": held}, "total": held,
            "copy": {"targets": {"db000": held}, "total": [2 * v for v in held]}}
    svg = charts.storage(data)
    ends = charts.week_ends(366)
    assert len(ends) == 53 and ends[-1] == 365 and ends[1] - ends[0] == 7
    assert _values(svg, 0) == [units.size(held[i]) for i in ends]  # the total
    assert _values(svg, 1) == [units.size(2 * held[i]) for i in ends]  # the copy storage
    assert charts.week_ends(30) == list(range(30))  # a month stays one point per day


def test_a_year_of_alerts_sums_each_week() -> None:
    days = _days(100)
    rows = [{"day": d, "severity": "warning", "alerts": 1} for d in days]
    rows.append({"day": days[-1], "severity": "critical", "alerts": 3})
    svg = charts.alerts(rows, days)
    ends = charts.week_ends(100)
    spans = [end - start for start, end in zip([-1, *ends], ends, strict=False)]
    assert _values(svg, 1) == [str(n) for n in spans]  # warnings: one a day
    critical = _values(svg, 0)  # the one critical day, in the newest week
    assert critical[-1] == "3" and set(critical[:-1]) == {"0"} and len(critical) == len(ends)
    assert "Alerts per week" in svg
