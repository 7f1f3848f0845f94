"""CLI commands about backups: ``backup``, ``list``, ``show``, ``rebuild-catalog``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from amprenta_backup.cli.arguments import (
    JsonOption,
    ProgressOption,
    TargetOption,
    bounded_int,
    configured_target,
)
from amprenta_backup.cli.index import listed
from amprenta_backup.cli.jsonlines import warn
from amprenta_backup.cli.output import human_bytes, print_json, print_table
from amprenta_backup.cli.progress import Progress
from amprenta_backup.core import layout
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import CatalogError, CatalogUnavailable
from amprenta_backup.core.models import BackupRecord, RunContext


def register(app: typer.Typer) -> None:
    app.command("backup", **listed("backup"))(cmd_backup)
    app.command("list", **listed("list"))(cmd_list)
    app.command("show", **listed("show"))(cmd_show)
    app.command("rebuild-catalog", **listed("rebuild-catalog"))(cmd_rebuild)


def reading_engine(as_json: bool) -> BackupEngine:
    """An engine that answers from the manifests in storage when the catalog is unreachable,
    and says so on stderr (a JSON line ``as_json``) before anything else is printed."""
    engine = BackupEngine(storage_fallback=True)
    where = engine.catalog.describe()  # reaches the catalog, or falls back to storage
    if engine.catalog_unreachable is not None:
        warn(f"{engine.catalog_unreachable}; answering from {where}: every backup shows as "
             "completed, and nothing is recorded", as_json)
    return engine


def record_dict(record: BackupRecord) -> dict[str, Any]:
    """A backup as ``--json`` prints it in ``backup``, ``list`` and ``show``: its manifest's
    fields (when it has one: ``key``, ``table_counts`` ...) and its record's (``status``,
    ``location``, ``error`` ...; the catalog's values win where both have one)."""
    return {**(record.manifest.to_dict() if record.manifest else {}), **record.to_dict()}


def cmd_backup(
    target_name: Annotated[str, typer.Argument(
        metavar="TARGET", help="conn_id or conn_id:database (AIRFLOW_CONN_<ID> set), or a "
        "BACKUP_TARGETS entry as listed (conn_id.database)")],
    backup_id: Annotated[str | None, typer.Option(
        "--backup-id", metavar="ID", help="id of the backup (default: a new one); running it "
        "again with a completed id does nothing (idempotent)")] = None,
    as_json: JsonOption = False,
    progress: ProgressOption = False,
) -> int:
    engine = BackupEngine()
    target = configured_target(engine, target_name)
    try:
        now = engine.catalog.now()  # the catalog server's clock, whatever this host's says
    except CatalogError as exc:
        raise CatalogUnavailable(f"backup of {target.name!r} not started, nothing was written: "
                                 f"{exc}") from exc
    backup_id = layout.check_backup_id(backup_id) if backup_id else layout.make_backup_id(now)
    runner = engine.runner()
    with Progress.for_terminal(progress, as_json) as bars:
        runner.progress = bars.phase(f"backup of {target.name}")
        manifest = runner.run(target.name, engine.conninfo(target),
                              RunContext(logical_date=now), backup_id)
    if as_json:  # the backup as `list` and `show` give it: its record, the manifest in it
        print_json(record_dict(engine.get_backup(manifest.backup_id)))
    else:
        print(f"backup {manifest.backup_id} of {manifest.target}: "
              f"{human_bytes(manifest.stored_bytes)} stored ({manifest.ratio:.2f}x), "
              f"{manifest.duration_seconds:.1f} s, sha256 {manifest.sha256}")
    return 0


def cmd_list(
    target: TargetOption = None,
    limit: Annotated[int, typer.Option(parser=bounded_int(1, 100000), metavar="N",
                                       help="most backups to show")] = 20,
    as_json: JsonOption = False,
) -> int:
    records = reading_engine(as_json).list_backups(limit=limit, target=target)
    if as_json:
        print_json([record_dict(r) for r in records])
        return 0
    print_table(
        ["BACKUP ID", "TARGET", "STATUS", "STARTED (UTC)", "STORED", "RAW", "SECONDS"],
        [[r.backup_id, r.target, r.status, f"{r.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
          human_bytes(r.stored_bytes), human_bytes(r.raw_bytes),
          f"{r.duration_seconds:.1f}" if r.duration_seconds is not None else None]
         for r in records],
    )
    return 0


def cmd_show(backup_id: Annotated[str, typer.Argument(metavar="BACKUP_ID")],
             as_json: JsonOption = False) -> int:
    record = reading_engine(as_json).get_backup(layout.check_backup_id(backup_id))
    data = record_dict(record)
    if as_json:
        print_json(data)
        return 0
    shown = {**data, "started_at": when(record.started_at),
             "completed_at": when(record.completed_at),
             "stored_bytes": sized(record.stored_bytes), "raw_bytes": sized(record.raw_bytes)}
    for key in ("backup_id", "target", "status", "location", "started_at", "completed_at",
                "stored_bytes", "raw_bytes", "sha256", "error"):
        print(f"{key:14} {shown[key] if shown[key] is not None else '-'}")
    if record.manifest:
        print("tables:")
        for table, rows in sorted(record.manifest.table_counts.items()):
            print(f"  {table:40} {rows}")
    return 0


def when(value: datetime | None) -> str | None:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if value else None


def sized(count: int | None) -> str | None:
    return None if count is None else f"{human_bytes(count)} ({count:,} bytes)"


def cmd_rebuild(as_json: JsonOption = False) -> int:
    """Exit 1 when a manifest was skipped or conflicts with a record (the rest is rebuilt)."""
    engine = BackupEngine()
    created = engine.catalog.create_database()
    report = engine.catalog.rebuild_report(engine.storage, engine.config.prefix)
    where = engine.storage.uri(engine.config.prefix)
    if as_json:
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
