"""CLI command ``copy``: copy a backup to the second storage (``BACKUP_COPY_*``) now."""

from __future__ import annotations

from typing import Annotated

import typer

from amprenta_backup.cli.arguments import JsonOption, target_spelling
from amprenta_backup.cli.index import listed
from amprenta_backup.cli.output import human_bytes, print_json
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.models import RunContext, utcnow


def register(app: typer.Typer) -> None:
    app.command("copy", **listed("copy"))(cmd_copy)


def cmd_copy(
    backup_id: Annotated[str, typer.Argument(metavar="BACKUP_ID|latest")] = "latest",
    only: Annotated[str | None, typer.Option(
        "--target", parser=target_spelling, metavar="TARGET",
        help="for latest: only this target (pg_main.analytics or pg_main:analytics)")
    ] = None,
    wal: Annotated[bool, typer.Option(
        "--wal", help="instead, copy the archived WAL (BACKUP_WAL_TARGET) the copy lacks")
    ] = False,
    as_json: JsonOption = False,
) -> int:
    """Exit 3 when the primary's backup is damaged (nothing is copied then)."""
    engine = BackupEngine()
    if wal:
        target = engine.pitr.target
        copied = engine.copy_workflow().copy_wal(target)
        print_json({"target": target, "wal_copied": copied}) if as_json else print(
            f"{len(copied)} WAL files of {target} copied to {engine.copy_workflow().storage}")
        return 0
    outcome = engine.copy_backup(backup_id, only, RunContext(logical_date=utcnow()))
    record = outcome.record
    if as_json:
        print_json({**record.to_dict(), "copied": outcome.copied, "present": outcome.present})
    else:
        print(f"backup {record.backup_id} of {record.target} copied to {record.location}: "
              f"{len(outcome.copied)} objects, {human_bytes(record.stored_bytes or 0)}, sha256 "
              f"{record.sha256} checked on the copy")
    return 0
