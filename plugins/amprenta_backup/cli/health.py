"""CLI command ``health``: the daily health checks, now, from a terminal."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from amprenta_backup.cli.arguments import JsonOption
from amprenta_backup.cli.index import listed
from amprenta_backup.cli.output import print_json
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.health import Level, render, worst


def register(app: typer.Typer) -> None:
    app.command("health", **listed("health"))(cmd_health)


def _as_of(text: str | None) -> datetime | None:
    if not text:
        return None  # now, by the catalog server's clock
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--as-of {text!r} is not an ISO time, e.g. 2026-11-24T06:00:00+00:00"
                          ) from None
    if when.tzinfo is None:
        raise ConfigError(f"--as-of {text!r} has no time zone; add +00:00 for UTC")
    return when


def cmd_health(
    as_of_text: Annotated[str | None, typer.Option(
        "--as-of", metavar="TIME",
        help="judge the records as of this ISO time (default: now)")] = None,
    as_json: JsonOption = False,
) -> int:
    """Exit 0 when healthy or only warnings, 1 when a check is critical."""
    as_of = _as_of(as_of_text)
    results = BackupEngine().health(as_of)  # the checks daily_health runs, WAL included
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        print(render(results))
    return 1 if worst(results) == Level.CRITICAL else 0
