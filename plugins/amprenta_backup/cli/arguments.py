"""Argument types shared by the CLI commands: numbers with bounds and a fix in the message."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting whole numbers from ``low`` to ``high``; anything else
    is a usage error (exit 2) naming the range, which argparse prefixes with the option."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number; give one from {low} to {high}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{value} is out of range; give a whole number from {low} to {high}")
        return value

    parse.__name__ = "whole number"  # argparse names the type by it in its messages
    return parse
