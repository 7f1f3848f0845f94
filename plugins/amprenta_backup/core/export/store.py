"""Where exports live in storage and how the catalog's ``exports`` table records them.

An export is one folder ``{prefix}/_exports/{YYYY}/{MM}/{DD}/{export_id}/`` holding the ZIP
and ``export.json`` (the manifest with the ZIP's sha256 and size), written after the ZIP:
a folder without ``export.json`` is an export that did not finish.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import PreconditionError
from amprenta_backup.core.layout import backup_time, check_backup_id
from amprenta_backup.core.models import RunContext

EXPORTS_ROOT = "_exports"
INFO_NAME = "export.json"
RUNNING, COMPLETED, FAILED, DELETED = "running", "completed", "failed", "deleted"


def export_folder(prefix: str, export_id: str) -> str:
    when = backup_time(check_backup_id(export_id))
    parts = [prefix.strip("/"), EXPORTS_ROOT, f"{when:%Y}", f"{when:%m}", f"{when:%d}",
             export_id]
    return "/".join(p for p in parts if p)


def zip_name(export_id: str) -> str:
    return f"project_export_{export_id}.zip"


def zip_key(prefix: str, export_id: str) -> str:
    return f"{export_folder(prefix, export_id)}/{zip_name(export_id)}"


def info_key(prefix: str, export_id: str) -> str:
    return f"{export_folder(prefix, export_id)}/{INFO_NAME}"


@dataclass
class ExportRecord:
    """One row of the catalog's ``exports`` table."""

    export_id: str
    status: str
    source: str
    database: str
    project_ids: list[str]
    include_data: bool
    include_files: bool
    location: str
    started_at: datetime
    created_by: str | None = None
    run: RunContext = field(default_factory=RunContext)
    completed_at: datetime | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    row_count: int | None = None
    table_count: int | None = None
    file_count: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run"] = self.run.to_dict()
        for name in ("started_at", "completed_at"):
            value = getattr(self, name)
            data[name] = value.isoformat() if value else None
        return data


class ExportRecords:
    """The ``exports`` table of the catalog.

    :param catalog: the backup catalog
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def save(self, record: ExportRecord) -> None:
        row = {k: v for k, v in asdict(record).items() if k not in ("export_id", "run",
                                                                     "database")}
        row.update(id=record.export_id, database_name=record.database,
                   project_ids=json.dumps(record.project_ids), dag_id=record.run.dag_id,
                   run_id=record.run.run_id)
        self.catalog.upsert("exports", row)

    def get(self, export_id: str) -> ExportRecord:
        with self.catalog.cursor() as cur:
            cur.execute("SELECT * FROM exports WHERE id = %s", (check_backup_id(export_id),))
            row = cur.fetchone()
        if row is None:
            raise PreconditionError(f"no export {export_id!r} in {self.catalog.describe()}; "
                                    "`amprenta-backup export list` shows the ids")
        return _record(row)

    def find(self, limit: int = 20, statuses: tuple[str, ...] | None = None,
             before: datetime | None = None) -> list[ExportRecord]:
        """Exports, newest first."""
        with self.catalog.cursor() as cur:
            cur.execute("SELECT * FROM exports WHERE (%(s)s::text[] IS NULL OR status = "
                        "ANY(%(s)s)) AND (%(b)s::timestamptz IS NULL OR started_at < %(b)s) "
                        "ORDER BY started_at DESC LIMIT %(n)s",
                        {"s": list(statuses) if statuses else None, "b": before, "n": limit})
            return [_record(row) for row in cur.fetchall()]

    def mark_deleted(self, export_id: str, reason: str) -> None:
        with self.catalog.cursor() as cur:
            cur.execute("UPDATE exports SET status = 'deleted', error = %s, updated_at = now() "
                        "WHERE id = %s", (reason, export_id))


def _record(row: dict[str, Any]) -> ExportRecord:
    return ExportRecord(
        export_id=row["id"], status=row["status"], source=row["source"],
        database=row["database_name"], project_ids=list(row["project_ids"]),
        include_data=row["include_data"], include_files=row["include_files"],
        location=row["location"], started_at=row["started_at"], created_by=row["created_by"],
        run=RunContext(dag_id=row["dag_id"], run_id=row["run_id"]),
        completed_at=row["completed_at"], size_bytes=row["size_bytes"], sha256=row["sha256"],
        row_count=row["row_count"], table_count=row["table_count"],
        file_count=row["file_count"], error=row["error"])
