"""``amprenta-backup export create|list|show|download``: project exports (core/export/)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from amprenta_backup.cli.arguments import JsonOption, bounded_int
from amprenta_backup.cli.index import listed
from amprenta_backup.cli.output import human_bytes, print_json, print_table
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.export.store import zip_name
from amprenta_backup.core.layout import check_backup_id


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, **listed("export"))
    group.command("create", help="export projects now")(cmd_create)
    group.command("list", help="list exports, newest first")(cmd_list)
    group.command("show", help="show one export and its rows per table")(cmd_show)
    group.command("download", help="write an export's ZIP here, checked")(cmd_download)
    app.add_typer(group, name="export")


def cmd_create(
    project_ids: Annotated[list[str], typer.Argument(
        metavar="PROJECT_ID...", help="values of the root key (BACKUP_PROJECT_ROOT)")],
    no_data: Annotated[bool, typer.Option("--no-data", help="only the DDL and counts")] = False,
    no_files: Annotated[bool, typer.Option("--no-files", help="leave out the files the rows "
                                           "name (BACKUP_PROJECT_FILE_COLUMNS)")] = False,
    as_json: JsonOption = False,
) -> int:
    result = BackupEngine().create_project_export(
        project_ids=project_ids, include_data=not no_data, include_files=not no_files,
        created_by=getpass.getuser())
    if as_json:
        print_json(result)
    else:
        print(f"export {result['export_id']}: {result['row_count']} rows of "
              f"{len(result['rows'])} tables, {result['files']} files, "
              f"{human_bytes(result['size_bytes'])}, sha256 {result['sha256']}")
    return 0


def cmd_list(limit: Annotated[int, typer.Option(parser=bounded_int(1, 100000), metavar="N",
                                                help="most exports to show")] = 20,
             as_json: JsonOption = False) -> int:
    records = BackupEngine().project_exports().list(limit)
    if as_json:
        print_json([r.to_dict() for r in records])
        return 0
    print_table(["EXPORT ID", "STATUS", "PROJECTS", "STARTED (UTC)", "ROWS", "SIZE"],
                [[r.export_id, r.status, ",".join(r.project_ids),
                  f"{r.started_at:%Y-%m-%d %H:%M:%S}", r.row_count, human_bytes(r.size_bytes)]
                 for r in records])
    return 0


def cmd_show(export_id: Annotated[str, typer.Argument(metavar="EXPORT_ID")],
             as_json: JsonOption = False) -> int:
    record = BackupEngine().project_exports().get(check_backup_id(export_id))
    data = record.to_dict()
    if as_json:
        print_json(data)
        return 0
    for key in ("export_id", "status", "project_ids", "source", "database", "location",
                "started_at", "completed_at", "row_count", "table_count", "file_count",
                "size_bytes", "sha256", "created_by", "error"):
        print(f"{key:14} {data[key] if data[key] is not None else '-'}")
    return 0


def cmd_download(export_id: Annotated[str, typer.Argument(metavar="EXPORT_ID")],
                 output: Annotated[Path | None, typer.Option(
                     "-o", "--output", help="file or folder (default: project_export_<id>.zip "
                     "here)")] = None) -> int:
    check_backup_id(export_id)
    path = output or Path(zip_name(export_id))
    if path.is_dir():
        path = path / zip_name(export_id)
    record = BackupEngine().project_exports().download(export_id, path)
    print(f"{path}: {human_bytes(record.size_bytes)}, sha256 {record.sha256} (checked)")
    return 0
