"""The manifest of a project export (``manifest.json``, the ZIP's last member).

It is validated on read (an export may come from anywhere): known fields only, bounded
sizes, member paths inside the archive.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from amprenta_backup.core.errors import PreconditionError
from amprenta_backup.core.export.graph import SchemaGraph

FORMAT = "amprenta-project-export/1"
MANIFEST_MEMBER = "manifest.json"
DDL_MEMBER = "ddl/schema.sql"
_MEMBER = re.compile(r"^(data|files|ddl)/[^\x00]{1,1000}$")
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Member(_Model):
    """One file of the archive: its path, sha256 and size."""

    path: str
    sha256: Sha256
    bytes: Count

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        parts = value.split("/")
        if not _MEMBER.match(value) or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"member path {value[:80]!r} is not inside data/, files/ or ddl/")
        return value


class TableData(_Model):
    """The rows of one table: where they are in the archive and how many."""

    table: str
    columns: list[str]
    rows: Count
    file: Member | None = None


class ExportedFile(_Model):
    """A file a row points to (``column`` holds ``value``), copied into the archive."""

    column: str
    value: str
    file: Member


class ExportManifest(_Model):
    """What an export holds and where it came from."""

    format: str = FORMAT
    export_id: str
    project_ids: list[str]
    root: str
    source: dict[str, str]
    snapshot_time: datetime
    started_at: datetime
    include_data: bool
    include_files: bool
    tables: list[TableData]
    ddl: Member
    files: list[ExportedFile] = []
    missing_files: list[dict[str, str]] = []
    graph: dict[str, Any]
    run: dict[str, str | None] = {}

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value != FORMAT:
            raise ValueError(f"format {value[:40]!r} is not {FORMAT!r}")
        return value

    def schema_graph(self) -> SchemaGraph:
        return SchemaGraph.from_dict(self.graph)

    def members(self) -> list[Member]:
        """Every file the manifest vouches for."""
        return ([self.ddl] + [t.file for t in self.tables if t.file is not None]
                + [f.file for f in self.files])

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)


def parse_export_manifest(data: bytes, where: str) -> ExportManifest:
    """A manifest from its JSON; PreconditionError naming what is wrong with it."""
    try:
        return ExportManifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first["loc"])
        raise PreconditionError(
            f"{where}: the manifest is not a valid project export manifest ({at}: "
            f"{first['msg']}); it was not made by `amprenta-backup export` or was altered"
        ) from None
