"""CLI command ``cleanup``: apply retention (``--dry-run`` prints the plan and changes nothing)."""

from __future__ import annotations

import getpass
import socket
from typing import Annotated

import typer

from amprenta_backup.cli.index import listed
from amprenta_backup.cli.output import print_json
from amprenta_backup.core.engine import BackupEngine


def register(app: typer.Typer) -> None:
    app.command("cleanup", **listed("cleanup"))(cmd_retention)


def cmd_retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan; delete "
                                          "nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (with the plan)")] = False,
    copy: Annotated[bool, typer.Option(
        "--copy", help="apply BACKUP_COPY_RETENTION_* to the second copy instead (the primary "
        "is not touched)")] = False,
) -> int:
    """Exit 1 when some backup could not be removed."""
    deleted_by = f"cli:{getpass.getuser()}@{socket.gethostname()}"
    if copy:
        copies = BackupEngine().copy_retention(deleted_by, dry_run=dry_run)
        print_json(copies.to_dict()) if as_json else print(copies.summary())
        return 1 if copies.errors else 0
    report = BackupEngine().retention().run(None, deleted_by=deleted_by, dry_run=dry_run)
    if as_json:
        print_json(report.to_dict(with_plan=True))
    else:
        print(report.plan.render())
        print(report.summary())
    return 1 if report.errors else 0
