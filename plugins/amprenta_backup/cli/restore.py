"""CLI commands that read backups back: ``verify``, ``restore``, ``download``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from amprenta_backup.cli.backups import reading_engine
from amprenta_backup.cli.output import human_bytes, print_json
from amprenta_backup.cli.progress import Progress
from amprenta_backup.core import layout
from amprenta_backup.core.constants import DUMP_NAME
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.models import RunContext, utcnow
from amprenta_backup.core.restore.request import MODES, NEW_DATABASE


def register(subparsers: Any) -> None:
    verify = subparsers.add_parser(
        "verify", help="read a backup back whole and check it (exit 3 if corrupt)")
    verify.add_argument("backup_id")
    _common(verify)
    verify.set_defaults(handler=cmd_verify)

    restore = subparsers.add_parser(
        "restore", help="restore a backup into a new database, or replace one",
        description="Restore a backup. new_database (the default) refuses a database that "
                    "exists; replace (needs --confirm with its name) restores into a temporary "
                    "database and swaps it in only once the row counts match.")
    restore.add_argument("backup_id", metavar="BACKUP_ID|latest")
    restore.add_argument("--database", required=True, help="database to restore into")
    restore.add_argument("--target-conn", dest="target_conn_id", metavar="CONN_ID",
                         help="server to restore onto (default: the backup's own connection)")
    restore.add_argument("--from", dest="source_target", metavar="TARGET",
                         help="for latest: the backup target (default: --target-conn)")
    restore.add_argument("--mode", choices=MODES, default=NEW_DATABASE)
    restore.add_argument("--confirm", metavar="NAME", help="for replace: the database name again")
    restore.add_argument("--schema", dest="schemas", action="append", default=[],
                         metavar="NAME", help="restore only this schema (repeatable)")
    restore.add_argument("--table", dest="tables", action="append", default=[],
                         metavar="NAME", help="restore only this table (repeatable)")
    restore.add_argument("--jobs", type=int, default=1, metavar="N",
                         help="parallel pg_restore jobs (above 1: via a temporary file)")
    restore.add_argument("--no-owner", action="store_true",
                         help="skip ownership and privileges (server without the source roles)")
    restore.add_argument("--dry-run", action="store_true", help="print the plan, touch nothing")
    _common(restore)
    restore.set_defaults(handler=cmd_restore)

    download = subparsers.add_parser(
        "download", help="save a backup's dump to a file, checked against its sha256")
    download.add_argument("backup_id")
    download.add_argument("path", type=Path, help="file, or folder for <backup_id>.pgc")
    download.add_argument("--raw", action="store_true",
                          help="save the stored (zstd) bytes instead of the .pgc archive")
    _common(download)
    download.set_defaults(handler=cmd_download)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--progress", action="store_true",
                        help="show progress on stderr even when it is not a terminal")


def cmd_verify(args: argparse.Namespace) -> int:
    engine = reading_engine()
    record = engine.get_backup(layout.check_backup_id(args.backup_id))
    with Progress.for_terminal(args.progress) as progress:
        result = engine.verify(record.backup_id, run=RunContext(logical_date=utcnow()),
                               progress=progress.phase("verify", record.stored_bytes or 0))
    if args.json:
        print_json(result.to_dict())
    elif result.ok:
        print(result.message)
    result.raise_if_corrupt()  # `main` prints it and exits 3
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    options = {key: getattr(args, key) for key in (
        "target_conn_id", "source_target", "mode", "confirm", "jobs", "no_owner", "dry_run")}
    with Progress.for_terminal(args.progress) as progress:
        result = reading_engine().restore_backup(
            args.backup_id, args.database, progress=progress.phase,
            schemas=tuple(args.schemas), tables=tuple(args.tables), **options)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.message)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    backup_id = layout.check_backup_id(args.backup_id)
    path: Path = args.path
    if path.is_dir():
        path = path / f"{backup_id}.{DUMP_NAME.rsplit('.', 1)[-1]}{'.zst' if args.raw else ''}"
    engine = BackupEngine()
    record = engine.get_backup(backup_id)
    with Progress.for_terminal(args.progress) as progress:
        result = engine.download(backup_id, path, decompress=not args.raw,
                                 progress=progress.phase("download", record.stored_bytes or 0))
    written = result.stored_bytes if args.raw else result.raw_bytes
    if args.json:
        print_json({"backup_id": backup_id, "path": str(path), "bytes": written,
                    "stored_bytes": result.stored_bytes, "sha256": result.sha256,
                    "decompressed": not args.raw})
    else:
        print(f"{path}: {human_bytes(written)} written; sha256 {result.sha256} of the stored "
              "bytes matches the manifest")
    return 0
