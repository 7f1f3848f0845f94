"""``amprenta-backup restore-globals``: a backup's roles and tablespaces onto a server."""

from __future__ import annotations

from typing import Annotated

import typer

from amprenta_backup.cli.arguments import JsonOption
from amprenta_backup.cli.backups import reading_engine
from amprenta_backup.cli.index import short_help
from amprenta_backup.cli.output import print_json
from amprenta_backup.core import layout

GLOBALS_HELP = (
    "Restore the globals (roles with attributes, password hashes, memberships and settings; "
    "tablespaces) of the server a backup came from. Additive: a role that exists is left as "
    "it is and reported; nothing is dropped.")


def register(app: typer.Typer) -> None:
    app.command("restore-globals", help=GLOBALS_HELP, short_help=short_help("restore-globals"))(
        cmd_restore_globals)


def cmd_restore_globals(
    backup_id: Annotated[str, typer.Argument(
        metavar="BACKUP_ID", help="any backup of that server (its globals are named in its "
        "manifest)")],
    target_conn_id: Annotated[str, typer.Option(
        "--server", "--target-conn", metavar="CONN_ID",
        help="connection of the server to create them on")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be "
                                          "created")] = False,
    as_json: JsonOption = False,
) -> int:
    result = reading_engine(as_json).restore_globals(layout.check_backup_id(backup_id),
                                              target_conn_id, dry_run=dry_run)
    if as_json:
        print_json(result.to_dict())
    else:
        print(result.message)
    return 1 if result.problems and not dry_run else 0
