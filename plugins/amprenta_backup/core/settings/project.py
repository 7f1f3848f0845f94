"""Settings of project exports: what a project is and where its files are."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BeforeValidator

from amprenta_backup.core.settings.base import Settings, comma_list, var

Items = Annotated[tuple[str, ...], BeforeValidator(comma_list)]


class ProjectSettings(Settings):
    """What a project is (its root table and key) and how exports are written."""

    group: ClassVar[str] = "Project export"

    root: str | None = var(
        "BACKUP_PROJECT_ROOT", None, "the project's root table and key, `schema.table.column` "
        "(e.g. `public.projects.id`); an export holds the root rows, every row that depends on "
        "them and every row those reference")
    spec_file: str | None = var(
        "BACKUP_PROJECT_SPEC_FILE", None, "the same in a JSON or YAML file: `root`, and "
        "optionally `source`, `file_columns`, `files_root` (variables win over it)")
    source: str | None = var(
        "BACKUP_PROJECT_SOURCE", None, "the database of the projects, `conn_id` or "
        "`conn_id:database`", shown="(the first of BACKUP_TARGETS)")
    file_columns: Items = var(
        "BACKUP_PROJECT_FILE_COLUMNS", (), "comma list of `schema.table.column` holding file "
        "paths or S3 keys; `include_files` copies the files they name into the export")
    files_root: str | None = var(
        "BACKUP_PROJECT_FILES_ROOT", None, "where those paths are: a local folder or "
        "`s3://bucket/prefix` (read with BACKUP_AWS_CONN_ID)", shown="`/`")
    compression_level: int = var(
        "BACKUP_EXPORT_COMPRESSION_LEVEL", 1, "deflate level of the export ZIP's members, "
        "0 = stored uncompressed", ge=0, le=9)
