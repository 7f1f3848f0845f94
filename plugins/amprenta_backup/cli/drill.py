"""CLI command ``drill``: run a restore drill now, or list the drills recorded in the catalog."""

from __future__ import annotations

import argparse
from typing import Any

from amprenta_backup.cli.arguments import bounded_int
from amprenta_backup.cli.output import print_json, print_table
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.models import RunContext, utcnow
from amprenta_backup.core.settings import BackupTarget


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "drill", help="restore a backup into a scratch database and check it (BACKUP_DRILL_*)")
    commands = parser.add_subparsers(dest="drill_command", required=True, metavar="ACTION")
    run = commands.add_parser("run", help="drill now: restore, check, drop the scratch database")
    run.add_argument("targets", nargs="*", metavar="TARGET",
                     help="conn_id[:database] to drill (default: every BACKUP_TARGETS entry)")
    run.add_argument("--json", action="store_true", help="print the drill records as JSON")
    run.set_defaults(handler=cmd_run)
    past = commands.add_parser("history", help="the drills recorded in the catalog, newest first")
    past.add_argument("--target", help="only this target (a name such as pg_main.analytics)")
    past.add_argument("--limit", type=bounded_int(1, 100000), default=20,
                      help="most drills to show (default 20)")
    past.add_argument("--json", action="store_true", help="print JSON")
    past.set_defaults(handler=cmd_history)


def cmd_run(args: argparse.Namespace) -> int:
    """Exit 0 when every drill passed, 1 otherwise."""
    engine = BackupEngine()
    targets = [BackupTarget.parse(t) for t in args.targets] or list(engine.config.targets)
    if not targets:
        raise ConfigError("no target to drill: name one (amprenta-backup drill run pg_main) or "
                          "set BACKUP_TARGETS")
    runner = engine.drills()
    records = [runner.run(target, RunContext(logical_date=utcnow())) for target in targets]
    if args.json:
        print_json([r.to_dict() for r in records])
    else:
        for record in records:
            print(record.summary)
            print(f"  report: {record.report_uri or 'not stored'}")
    return 0 if all(r.passed for r in records) else 1


def cmd_history(args: argparse.Namespace) -> int:
    records = BackupEngine().drills().history(args.target, max(1, args.limit))
    if args.json:
        print_json([r.to_dict() for r in records])
        return 0
    print_table(["drill", "target", "backup", "passed", "rto s", "objective s", "failed checks"],
                [[r.drill_id, r.target, r.backup_id,
                  {True: "yes", False: "NO", None: "running"}[r.passed],
                  None if r.rto_seconds is None else f"{r.rto_seconds:.1f}",
                  f"{r.rto_objective_seconds:g}",
                  ", ".join(c.name for c in r.failures) or None] for r in records])
    return 0
