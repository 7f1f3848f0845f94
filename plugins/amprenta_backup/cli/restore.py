"""CLI commands that read backups back: ``verify``, ``restore``, ``download``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from amprenta_backup.cli.arguments import (
    DryRunOption,
    FromCopyOption,
    JsonOption,
    ProgressOption,
    choice,
)
from amprenta_backup.cli.backups import reading_engine
from amprenta_backup.cli.index import listed, short_help
from amprenta_backup.cli.output import human_bytes, print_json
from amprenta_backup.cli.progress import Progress
from amprenta_backup.core import layout
from amprenta_backup.core.constants import DUMP_NAME
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.models import RunContext, utcnow
from amprenta_backup.core.restore.request import MODES, NEW_DATABASE

BackupIdArgument = Annotated[str, typer.Argument(metavar="BACKUP_ID")]
RESTORE_HELP = (
    "Restore a backup. new_database (the default) refuses a database that exists; replace "
    "(needs --confirm with its name) restores into a temporary database and swaps it in only "
    "once the row counts match.")


def register(app: typer.Typer) -> None:
    app.command("verify", **listed("verify"))(cmd_verify)
    app.command("restore", help=RESTORE_HELP, short_help=short_help("restore"))(cmd_restore)
    app.command("download", **listed("download"))(cmd_download)


def cmd_verify(backup_id: BackupIdArgument, as_json: JsonOption = False,
               progress: ProgressOption = False, from_copy: FromCopyOption = False) -> int:
    engine = reading_engine(as_json)
    record = engine.get_backup(layout.check_backup_id(backup_id))
    with Progress.for_terminal(progress, as_json) as bars:
        result = engine.verify(record.backup_id, run=RunContext(logical_date=utcnow()),
                               progress=bars.phase("verify", record.stored_bytes or 0),
                               from_copy=from_copy)
    if as_json:
        print_json(result.to_dict())
    elif result.ok:
        print(result.message)
    result.raise_if_corrupt()  # `main` prints it and exits 3
    return 0


def cmd_restore(
    backup_id: Annotated[str, typer.Argument(metavar="BACKUP_ID|latest")],
    database: Annotated[str, typer.Option("--database", metavar="NAME",
                                          help="database to restore into")],
    target_conn_id: Annotated[str | None, typer.Option(
        "--server", "--target-conn", metavar="CONN_ID",
        help="connection of the server to restore onto (default: the backup's own)")] = None,
    source_target: Annotated[str | None, typer.Option(
        "--from", metavar="TARGET", help="for latest: the backup target, conn_id or "
        "conn_id.database (default: --server, else the only BACKUP_TARGETS entry)")] = None,
    mode: Annotated[str, typer.Option("--mode", parser=choice(MODES),
                                      metavar="|".join(MODES))] = NEW_DATABASE,
    confirm: Annotated[str | None, typer.Option(
        "--confirm", metavar="NAME", help="for replace: the database name again")] = None,
    schemas: Annotated[list[str] | None, typer.Option(
        "--schema", metavar="NAME", help="restore only this schema (repeatable)")] = None,
    tables: Annotated[list[str] | None, typer.Option(
        "--table", metavar="NAME", help="restore only this table (repeatable)")] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", metavar="N", help="parallel pg_restore jobs (above 1: via a temporary "
        "file)")] = 1,
    no_owner: Annotated[bool, typer.Option(
        "--no-owner", help="skip ownership and privileges (server without the source "
        "roles)")] = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
    progress: ProgressOption = False,
    from_copy: FromCopyOption = False,
) -> int:
    with Progress.for_terminal(progress, as_json) as bars:
        result = reading_engine(as_json).restore_backup(
            backup_id, database, progress=bars.phase, schemas=tuple(schemas or ()),
            tables=tuple(tables or ()), target_conn_id=target_conn_id,
            source_target=source_target, mode=mode, confirm=confirm, jobs=jobs,
            no_owner=no_owner, dry_run=dry_run, from_copy=from_copy)
    if as_json:
        print_json(result.to_dict())
    else:
        print(result.message)
    return 0


def download_path(text: str, file_name: str) -> Path:
    """The file to write: ``given``, or ``file_name`` in it when it is a folder or ends in
    ``/`` (a folder that does not exist yet is created); a file in a missing folder is an
    error (exit 2) rather than a guess."""
    given = Path(text)
    if text.endswith(os.sep) or text in (".", ".."):
        given.mkdir(parents=True, exist_ok=True)
    if given.is_dir():
        return given / file_name
    if not given.parent.is_dir():
        raise ConfigError(f"folder {str(given.parent)!r} does not exist: create it, or end the "
                          f"path with / to have it created ({given.parent}/)")
    return given


def cmd_download(
    backup_id: BackupIdArgument,
    path_text: Annotated[str, typer.Argument(
        metavar="PATH", help="file, or folder for <backup_id>.pgc (created when PATH ends "
        "with /)")],
    raw: Annotated[bool, typer.Option(
        "--raw", help="save the stored (zstd) bytes instead of the .pgc archive")] = False,
    as_json: JsonOption = False,
    progress: ProgressOption = False,
    from_copy: FromCopyOption = False,
) -> int:
    backup_id = layout.check_backup_id(backup_id)
    path = download_path(path_text, f"{backup_id}.{DUMP_NAME.rsplit('.', 1)[-1]}"
                               f"{'.zst' if raw else ''}")
    engine = BackupEngine()
    record = engine.get_backup(backup_id)
    with Progress.for_terminal(progress, as_json) as bars:
        result = engine.download(backup_id, path, decompress=not raw,
                                 progress=bars.phase("download", record.stored_bytes or 0),
                                 from_copy=from_copy)
    written = result.stored_bytes if raw else result.raw_bytes
    if as_json:
        print_json({"backup_id": backup_id, "path": str(path), "bytes": written,
                    "stored_bytes": result.stored_bytes, "sha256": result.sha256,
                    "decompressed": not raw})
    else:
        print(f"{path}: {human_bytes(written)} written; sha256 {result.sha256} of the stored "
              "bytes matches the manifest")
    return 0
