"""CLI command ``drill``: run a restore drill now, or list the drills recorded in the catalog."""

from __future__ import annotations

from typing import Annotated

import typer

from amprenta_backup.cli.arguments import (
    FromCopyOption,
    JsonOption,
    TargetOption,
    bounded_int,
    configured_target,
)
from amprenta_backup.cli.index import listed
from amprenta_backup.cli.output import print_json, print_table
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.models import RunContext, utcnow


def register(app: typer.Typer) -> None:
    drills = typer.Typer(no_args_is_help=True, **listed("drill"))
    drills.command("run", help="drill now: restore, check, drop the scratch database")(cmd_run)
    drills.command("history", help="the drills recorded in the catalog, newest first")(
        cmd_history)
    app.add_typer(drills, name="drill")


def cmd_run(
    names: Annotated[list[str] | None, typer.Argument(
        metavar="[TARGET]...",
        help="conn_id or conn_id:database to drill, or a BACKUP_TARGETS entry as listed "
        "(conn_id.database; default: every entry)")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="print the drill records as JSON")] = False,
    from_copy: FromCopyOption = False,
    backup: Annotated[str | None, typer.Option(
        "--backup", metavar="ID", help="drill this backup (an id from `amprenta-backup list`) "
        "instead of the latest of its target")] = None,
) -> int:
    """Exit 0 when every drill passed, 1 otherwise."""
    engine = BackupEngine()
    runner = engine.drills(from_copy=from_copy)
    targets = [configured_target(engine, t) for t in names or ()] or (
        [configured_target(engine, runner.target_of(backup))] if backup else
        list(engine.config.targets))
    if not targets:
        raise ConfigError("no target to drill: name one (amprenta-backup drill run pg_main) or "
                          "set BACKUP_TARGETS")
    records = [runner.run(target, RunContext(logical_date=utcnow()), backup_id=backup)
               for target in targets]
    if as_json:
        print_json([r.to_dict() for r in records])
    else:
        for record in records:
            print(record.summary)
            print(f"  report: {record.report_uri or 'not stored'}")
    return 0 if all(r.passed for r in records) else 1


def cmd_history(
    target: TargetOption = None,
    limit: Annotated[int, typer.Option(parser=bounded_int(1, 100000), metavar="N",
                                       help="most drills to show (default 20)")] = 20,
    as_json: JsonOption = False,
) -> int:
    records = BackupEngine().drills().history(target, max(1, limit))
    if as_json:
        print_json([r.to_dict() for r in records])
        return 0
    print_table(["drill", "target", "backup", "passed", "rto s", "objective s", "failed checks"],
                [[r.drill_id, r.target, r.backup_id,
                  {True: "yes", False: "NO", None: "running"}[r.passed],
                  None if r.rto_seconds is None else f"{r.rto_seconds:.1f}",
                  f"{r.rto_objective_seconds:g}",
                  ", ".join(c.name for c in r.failures) or None] for r in records])
    return 0
