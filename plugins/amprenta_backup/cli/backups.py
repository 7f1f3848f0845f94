"""CLI commands about backups: ``backup``, ``list``, ``show``, ``rebuild-catalog``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import Any

from amprenta_backup.cli.arguments import bounded_int
from amprenta_backup.cli.output import human_bytes, print_json, print_table
from amprenta_backup.core import layout
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import CatalogError, CatalogUnavailable
from amprenta_backup.core.models import BackupRecord, RunContext
from amprenta_backup.core.settings import BackupTarget


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser("backup", help="back up one target now")
    backup.add_argument("target", help="conn_id or conn_id:database (AIRFLOW_CONN_<ID> set)")
    backup.add_argument("--backup-id", metavar="ID",
                        help="id of the backup (default: a new one); running it again with a "
                             "completed id does nothing (idempotent)")
    backup.add_argument("--json", action="store_true", help="print JSON")
    backup.set_defaults(handler=cmd_backup)

    listing = subparsers.add_parser("list", help="list backups, newest first")
    listing.add_argument("--target", help="only this target")
    listing.add_argument("--limit", type=bounded_int(1, 100000), default=20)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list)

    show = subparsers.add_parser("show", help="show one backup and its manifest")
    show.add_argument("backup_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=cmd_show)

    rebuild = subparsers.add_parser("rebuild-catalog", help="re-create records from storage")
    rebuild.add_argument("--json", action="store_true", help="print JSON")
    rebuild.set_defaults(handler=cmd_rebuild)


def reading_engine() -> BackupEngine:
    """An engine that answers from the manifests in storage when the catalog is unreachable,
    and says so on stderr before anything else is printed."""
    engine = BackupEngine(storage_fallback=True)
    where = engine.catalog.describe()  # reaches the catalog, or falls back to storage
    if engine.catalog_unreachable is not None:
        print(f"warning: {engine.catalog_unreachable}; answering from {where}: every backup "
              "shows as completed, and nothing is recorded", file=sys.stderr)
    return engine


def record_dict(record: BackupRecord) -> dict[str, Any]:
    data = asdict(record)
    data["status"] = str(record.status)
    data["duration_seconds"] = record.duration_seconds
    data["manifest"] = record.manifest.to_dict() if record.manifest else None
    return data


def cmd_backup(args: argparse.Namespace) -> int:
    engine = BackupEngine()
    target = BackupTarget.parse(args.target)
    try:
        now = engine.catalog.now()  # the catalog server's clock, whatever this host's says
    except CatalogError as exc:
        raise CatalogUnavailable(f"backup of {target.name!r} not started, nothing was written: "
                                 f"{exc}") from exc
    backup_id = layout.check_backup_id(args.backup_id) if args.backup_id else \
        layout.make_backup_id(now)
    manifest = engine.runner().run(target.name, engine.conninfo(target),
                                   RunContext(logical_date=now), backup_id)
    if args.json:
        print_json(manifest.to_dict())
    else:
        print(f"backup {manifest.backup_id} of {manifest.target}: "
              f"{human_bytes(manifest.stored_bytes)} stored ({manifest.ratio:.2f}x), "
              f"{manifest.duration_seconds:.1f} s, sha256 {manifest.sha256}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    records = reading_engine().list_backups(limit=args.limit, target=args.target)
    if args.json:
        print_json([record_dict(r) for r in records])
        return 0
    print_table(
        ["BACKUP ID", "TARGET", "STATUS", "STARTED (UTC)", "STORED", "RAW", "SECONDS"],
        [[r.backup_id, r.target, r.status, f"{r.started_at:%Y-%m-%d %H:%M:%S}",
          human_bytes(r.stored_bytes), human_bytes(r.raw_bytes),
          f"{r.duration_seconds:.1f}" if r.duration_seconds is not None else None]
         for r in records],
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    record = reading_engine().get_backup(layout.check_backup_id(args.backup_id))
    data = record_dict(record)
    if args.json:
        print_json(data)
        return 0
    for key in ("backup_id", "target", "status", "location", "started_at", "completed_at",
                "stored_bytes", "raw_bytes", "sha256", "error"):
        print(f"{key:14} {data[key] if data[key] is not None else '-'}")
    if record.manifest:
        print("tables:")
        for table, rows in sorted(record.manifest.table_counts.items()):
            print(f"  {table:40} {rows}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    """Exit 1 when a manifest was skipped or conflicts with a record (the rest is rebuilt)."""
    engine = BackupEngine()
    created = engine.catalog.create_database()
    report = engine.catalog.rebuild_report(engine.storage, engine.config.prefix)
    where = engine.storage.uri(engine.config.prefix)
    if args.json:
        print_json({**report.to_dict(), "storage": where, "catalog_created": created})
    else:
        made = f" into the new {engine.catalog.describe()}" if created else ""
        print(f"rebuilt {report.rebuilt} records from {where}{made}")
        for uri, why in report.skipped:
            print(f"skipped {uri}: {why}", file=sys.stderr)
        for backup_id, why in report.conflicts:
            print(f"conflict: backup {backup_id} kept as the catalog has it: {why}",
                  file=sys.stderr)
    return 1 if report.skipped or report.conflicts else 0
