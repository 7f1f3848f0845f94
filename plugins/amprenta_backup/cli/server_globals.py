"""``amprenta-backup restore-globals``: a backup's roles and tablespaces onto a server."""

from __future__ import annotations

import argparse
from typing import Any

from amprenta_backup.cli.backups import reading_engine
from amprenta_backup.cli.output import print_json
from amprenta_backup.core import layout


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "restore-globals", help="create a backup's roles and tablespaces on a server",
        description="Restore the globals (roles with attributes, password hashes, memberships "
                    "and settings; tablespaces) of the server a backup came from. Additive: a "
                    "role that exists is left as it is and reported; nothing is dropped.")
    parser.add_argument("backup_id", help="any backup of that server (its globals are named "
                                          "in its manifest)")
    parser.add_argument("--target-conn", dest="target_conn_id", metavar="CONN_ID", required=True,
                        help="server to create them on")
    parser.add_argument("--dry-run", action="store_true", help="say what would be created")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=cmd_restore_globals)


def cmd_restore_globals(args: argparse.Namespace) -> int:
    result = reading_engine().restore_globals(layout.check_backup_id(args.backup_id),
                                              args.target_conn_id, dry_run=args.dry_run)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.message)
    return 1 if result.problems and not args.dry_run else 0
