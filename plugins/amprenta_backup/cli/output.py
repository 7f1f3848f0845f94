"""How the CLI prints: aligned tables for people, JSON for scripts, errors in the user's words.

JSON (``--json``): one object per thing on stdout (a backup is the same object in ``backup``,
``list`` and ``show``), times in ISO 8601 UTC (``2026-12-01T03:00:00+00:00``); stderr is JSON
Lines (:mod:`amprenta_backup.cli.jsonlines`), an error its last line,
``{"error": {"type": ..., "message": ..., "exit_code": ...}}``, with the same exit code as
without ``--json``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from amprenta_backup.cli import jsonlines
from amprenta_backup.core.errors import reword
from amprenta_backup.core.models import human_bytes

__all__ = ["human_bytes", "print_json", "print_table", "fail", "reader_gone"]
EXIT_PIPE = 141  # 128 + SIGPIPE, what `cat` exits with when its reader has gone
# the CLI's word for each request field the engine names in its errors
OPTION_WORDS = {
    "source_target": "--from", "target_conn_id": "--server", "confirm": "--confirm",
    "mode": "--mode", "jobs": "--jobs", "no_owner": "--no-owner", "dry_run": "--dry-run",
    "target_database": "--database", "database": "--database", "schemas": "--schema",
    "tables": "--table", "backup_id": "BACKUP_ID", "server_conn_id": "--server",
    "parallel": "--parallel", "before": "--before", "catalog_database": "--catalog-database",
    "allow_nonempty": "--allow-nonempty",
}
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # for --version alone

    try:
        return version("amprenta-backup")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def utc_iso(value: object) -> object:
    """``value`` with every datetime, and every string holding one with a zone, in UTC ISO."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, str) and _ISO_TIME.fullmatch(value):
        return utc_iso(datetime.fromisoformat(value))
    if isinstance(value, dict):
        return {key: utc_iso(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [utc_iso(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def print_json(data: Any) -> None:
    json.dump(utc_iso(data), sys.stdout, indent=2, default=str, sort_keys=True)
    sys.stdout.write("\n")
    sys.stdout.flush()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def fail(message: str, kind: str, code: int, as_json: bool) -> int:
    """Print an error (in the CLI's words for the options it names) and return ``code``."""
    message = reword(message, OPTION_WORDS)
    if as_json:
        jsonlines.write("error", {"type": kind, "message": message, "exit_code": code})
    else:
        print(f"error: {message}", file=sys.stderr)
    return code


def reader_gone() -> int:
    """Stdout's reader closed the pipe: stop quietly (no traceback at exit either)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_PIPE
