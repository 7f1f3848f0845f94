"""What a project is, from ``BACKUP_PROJECT_*`` and an optional JSON/YAML spec file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.settings.base import BackupTarget
from amprenta_backup.core.settings.project import ProjectSettings

_SPEC_KEYS = {"root", "source", "file_columns", "files_root"}


@dataclass(frozen=True)
class ProjectSpec:
    """A project's root table and key, its database, and the columns that name files.

    :param root: ``schema.table`` of the root table
    :param column: the root table's column that holds the project ids
    :param file_columns: ``schema.table.column`` holding file paths or S3 keys
    :param files_root: a local folder or ``s3://bucket/prefix`` the paths are relative to
    """

    root: str
    column: str
    source: BackupTarget
    file_columns: tuple[str, ...] = ()
    files_root: str = "/"


def split_column(text: str, variable: str) -> tuple[str, str]:
    """``schema.table.column`` -> (``schema.table``, ``column``); ConfigError otherwise."""
    parts = text.strip().split(".")
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"{variable}={text[:80]!r} is not schema.table.column; write it like "
                          "public.projects.id")
    return f"{parts[0]}.{parts[1]}", parts[2]


def _spec_file(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"BACKUP_PROJECT_SPEC_FILE={path!r} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not set(data) <= _SPEC_KEYS or "root" not in data:
        raise ConfigError(f"BACKUP_PROJECT_SPEC_FILE={path!r} must be a mapping with `root` "
                          f"and optionally {', '.join(sorted(_SPEC_KEYS - {'root'}))}")
    return data


def project_spec(settings: ProjectSettings, targets: tuple[BackupTarget, ...]) -> ProjectSpec:
    """The configured project; ConfigError naming the variable to set when there is none."""
    data = _spec_file(settings.spec_file) if settings.spec_file else {}
    root = settings.root or data.get("root")
    if not root:
        raise ConfigError("no project is configured: set BACKUP_PROJECT_ROOT (e.g. "
                          "public.projects.id) or BACKUP_PROJECT_SPEC_FILE")
    table, column = split_column(str(root), "BACKUP_PROJECT_ROOT")
    source_text = settings.source or data.get("source")
    if source_text:
        source = BackupTarget.parse(str(source_text))
    elif targets:
        source = targets[0]
    else:
        raise ConfigError("set BACKUP_PROJECT_SOURCE (conn_id or conn_id:database) or "
                          "BACKUP_TARGETS: the database the projects are in")
    columns = settings.file_columns or tuple(str(c) for c in data.get("file_columns") or ())
    for name in columns:
        split_column(name, "BACKUP_PROJECT_FILE_COLUMNS")
    return ProjectSpec(table, column, source, tuple(columns),
                       str(settings.files_root or data.get("files_root") or "/"))
