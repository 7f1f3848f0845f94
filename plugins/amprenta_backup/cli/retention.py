"""CLI command ``cleanup``: apply retention (``--dry-run`` prints the plan and changes nothing)."""

from __future__ import annotations

import argparse
import getpass
import socket
from typing import Any

from amprenta_backup.cli.output import print_json
from amprenta_backup.core.engine import BackupEngine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cleanup", help="delete backups that no retention policy keeps (see --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; delete nothing")
    parser.add_argument("--json", action="store_true", help="print JSON (with the plan)")
    parser.set_defaults(handler=cmd_retention)


def cmd_retention(args: argparse.Namespace) -> int:
    """Exit 1 when some backup could not be removed."""
    deleted_by = f"cli:{getpass.getuser()}@{socket.gethostname()}"
    report = BackupEngine().retention().run(None, deleted_by=deleted_by, dry_run=args.dry_run)
    if args.json:
        print_json(report.to_dict(with_plan=True))
    else:
        print(report.plan.render())
        print(report.summary())
    return 1 if report.errors else 0
