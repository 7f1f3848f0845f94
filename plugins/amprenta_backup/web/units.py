"""Sizes and times in human units (humanize), for the page."""

from __future__ import annotations

from datetime import timedelta

import humanize


def size(count: float | None) -> str:
    """``1.2 GiB``; ``-`` for nothing."""
    return "-" if count is None else str(humanize.naturalsize(count, binary=True))


def duration(seconds: float | None) -> str:
    """``2 minutes and 5 seconds``, to the second; ``-`` for nothing."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.2f} seconds"
    return str(humanize.precisedelta(timedelta(seconds=round(seconds)), minimum_unit="seconds",
                                     format="%0.0f"))


def age(seconds: float | None) -> str:
    """``3 hours ago``; ``never`` for nothing."""
    if seconds is None:
        return "never"
    return f"{humanize.naturaldelta(timedelta(seconds=seconds))} ago"
