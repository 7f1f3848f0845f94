"""CLI command ``metrics``: the spec's success rate, size and duration, and storage trend."""

from __future__ import annotations

import argparse
from typing import Any

from amprenta_backup.cli.arguments import bounded_int
from amprenta_backup.cli.output import human_bytes, print_json, print_table
from amprenta_backup.core.engine import BackupEngine

QUERIES = {"success-rate": 30, "size-duration": 7, "storage-trend": 30}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("metrics", help="backup success rate, size, duration, trend")
    parser.add_argument("metric", choices=sorted(QUERIES), help="which metric")
    parser.add_argument("--days", type=bounded_int(1, 36500),
                        help="window in days (30, 7 and 30 by default)")
    parser.add_argument("--target", help="only this target")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=cmd_metrics)


def cmd_metrics(args: argparse.Namespace) -> int:
    engine = BackupEngine()
    days = args.days or QUERIES[args.metric]
    if args.metric == "storage-trend":
        rows = engine.metric("storage-trend", days, args.target)
        if args.json:
            print_json(rows)
        else:
            print_table(["DATE (UTC)", "BACKUPS", "STORED"],
                        [[r["backup_date"], r["backups"], human_bytes(r["total_size"])]
                         for r in rows])
        return 0
    if args.metric == "success-rate":
        data = engine.metric("success-rate", days, args.target)
        line = (f"success rate over {days} days: "
                f"{'-' if data['success_rate'] is None else str(data['success_rate']) + '%'} "
                f"({data['succeeded']} of {data['total']} finished backups; {data['failed']} "
                "failed)")
    else:
        data = engine.metric("size-duration", days, args.target)
        size = data["avg_size_bytes"]
        seconds = data["avg_duration_seconds"]
        line = (f"over {days} days: {data['backups']} successful backups, average size "
                f"{human_bytes(None if size is None else int(size))}, average duration "
                f"{'-' if seconds is None else f'{seconds:.1f} s'}")
    if args.json:
        print_json(data)
    else:
        print(line)
    return 0
