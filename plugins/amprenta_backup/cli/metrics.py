"""CLI command ``metrics``: the spec's success rate, size and duration, and storage trend."""

from __future__ import annotations

from typing import Annotated

import typer

from amprenta_backup.cli.arguments import JsonOption, TargetOption, bounded_int, choice
from amprenta_backup.cli.index import listed
from amprenta_backup.cli.output import human_bytes, print_json, print_table
from amprenta_backup.core.engine import BackupEngine

QUERIES = {"success-rate": 30, "size-duration": 7, "storage-trend": 30}


def register(app: typer.Typer) -> None:
    app.command("metrics", **listed("metrics"))(cmd_metrics)


def cmd_metrics(
    metric: Annotated[str, typer.Argument(
        parser=choice(sorted(QUERIES)), metavar="METRIC",
        help=f"which metric: {', '.join(sorted(QUERIES))}")],
    days: Annotated[int | None, typer.Option(
        parser=bounded_int(1, 36500), metavar="N",
        help="window in days (30, 7 and 30 by default)")] = None,
    target: TargetOption = None,
    as_json: JsonOption = False,
) -> int:
    engine = BackupEngine()
    days = days or QUERIES[metric]
    if metric == "storage-trend":
        rows = engine.metric("storage-trend", days, target)
        if as_json:
            print_json(rows)
        else:
            print_table(["DATE (UTC)", "BACKUPS", "STORED"],
                        [[r["backup_date"], r["backups"], human_bytes(r["total_size"])]
                         for r in rows])
        return 0
    if metric == "success-rate":
        data = engine.metric("success-rate", days, target)
        line = (f"success rate over {days} days: "
                f"{'-' if data['success_rate'] is None else str(data['success_rate']) + '%'} "
                f"({data['succeeded']} of {data['total']} finished backups; {data['failed']} "
                "failed)")
    else:
        data = engine.metric("size-duration", days, target)
        size = data["avg_size_bytes"]
        seconds = data["avg_duration_seconds"]
        line = (f"over {days} days: {data['backups']} successful backups, average size "
                f"{human_bytes(None if size is None else int(size))}, average duration "
                f"{'-' if seconds is None else f'{seconds:.1f} s'}")
    if as_json:
        print_json(data)
    else:
        print(line)
    return 0
