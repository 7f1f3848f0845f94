"""``manifest.json`` read from storage, checked against one typed schema with bounds.

A manifest in storage may have been written by a bug, a person or an attacker; what
``rebuild-catalog`` (and every reader of the folders) accepts must fit the catalog's columns
and mean what it says: a known id and target that match the folder it sits in, sizes that
are not negative and fit a bigint, dates that are not in the future, no nesting deep enough
to exhaust the parser. Anything else is a :class:`ManifestError` naming the field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from amprenta_backup.core import layout
from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.storage.base import Storage

MAX_MANIFEST_BYTES = 64 * 2**20  # 10,000 tables' counts take well under 1 MiB
MAX_DEPTH = 32  # the deepest real manifest nests 4 levels
BIGINT = 2**63 - 1
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)

Count = Annotated[int, Field(strict=True, ge=0, le=BIGINT)]
Text = Annotated[str, StringConstraints(max_length=256)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("has no time zone")
    if value < EARLIEST:
        raise ValueError(f"is before {EARLIEST:%Y-%m-%d}")
    return value


When = Annotated[datetime, AfterValidator(_aware)]


class ManifestError(BackupError):
    """A stored manifest that cannot be trusted; the message names the field and the fix."""


class RunModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dag_id: Text | None = None
    run_id: Text | None = None
    logical_date: When | None = None
    task_id: Text | None = None
    try_number: Annotated[int, Field(strict=True, ge=0, le=10_000)] | None = None


class EnvelopeModel(BaseModel):
    """A client-side encryption envelope (core/encryption/envelope.py)."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["AES-256-GCM"]
    chunk_bytes: Annotated[int, Field(strict=True, ge=1024, le=64 * 2**20)]
    key_id: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    provider: Literal["key", "kms"]
    wrapped_key: Annotated[str, StringConstraints(min_length=1, max_length=4096,
                                                  pattern=r"^[A-Za-z0-9+/=]+$")]


class PartModel(BaseModel):
    """One object of a parallel dump (models.DumpPart)."""

    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, StringConstraints(max_length=1024)]
    section: Literal["all", "data"]
    tables: Annotated[list[Annotated[str, StringConstraints(max_length=300)]],
                      Field(max_length=1_000_000)] = []
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None
    stored_bytes: Count
    raw_bytes: Count
    encryption: EnvelopeModel | None = None


class ManifestModel(BaseModel):
    """The fields a record is made of, with the bounds the catalog and retention rely on."""

    model_config = ConfigDict(extra="allow")

    backup_id: Annotated[str, StringConstraints(pattern=layout.BACKUP_ID.pattern)]
    target: Annotated[str, StringConstraints(pattern=layout.TARGET_NAME.pattern)]
    database: Annotated[str, StringConstraints(max_length=63)]
    kind: Literal["logical", "physical"]
    key: Annotated[str, StringConstraints(max_length=1024)]
    format: Annotated[str, StringConstraints(max_length=64)]
    compression: Annotated[str, StringConstraints(max_length=64)]
    stored_bytes: Count
    raw_bytes: Count
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None
    started_at: When
    completed_at: When
    server_version: Annotated[str, StringConstraints(max_length=128)]
    pg_dump_version: Annotated[str, StringConstraints(max_length=128)]
    table_counts: Annotated[dict[Annotated[str, StringConstraints(max_length=300)], Count],
                            Field(max_length=1_000_000)] = {}
    run: RunModel = RunModel()
    version: Annotated[int, Field(strict=True, ge=1, le=1000)] = 1
    encryption: EnvelopeModel | None = None
    parts: Annotated[list[PartModel], Field(max_length=10_000)] | None = None


def parse_manifest(raw: bytes, folder: str, not_after: datetime | None = None) -> Manifest:
    """The manifest stored in ``folder`` (``.../{target}/YYYY/MM/DD/{backup_id}``), checked.

    :param raw: the bytes of ``manifest.json``
    :param folder: the key of the folder it was read from
    :param not_after: the latest acceptable date (default: now + 1 day); give the catalog
        server's time
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"is {len(raw)} bytes, more than a manifest can be")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ManifestError("is nested too deeply to be a manifest") from None
    except ValueError as exc:
        raise ManifestError(f"is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"is a JSON {type(data).__name__}, not an object")
    if _depth(data) > MAX_DEPTH:
        raise ManifestError(f"is nested more than {MAX_DEPTH} levels deep")
    try:
        checked = ManifestModel.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(_first_problem(exc)) from None
    _check_place(checked, folder)
    _check_dates(checked, not_after or datetime.now(UTC) + FUTURE_SLACK)
    try:
        return Manifest.from_json(raw)
    except (TypeError, ValueError, KeyError) as exc:
        raise ManifestError(f"has fields this version does not know ({exc})") from None


def stored_manifest(storage: Storage, folder: str) -> Manifest | None:
    """The manifest of a backup that completed in ``folder``, if storage holds one (written by
    this package's own run: read as it is, without :func:`parse_manifest`'s bounds)."""
    key = layout.manifest_key(folder)
    if storage.exists(key):
        return Manifest.from_json(storage.get_bytes(key))
    return None


def _check_place(manifest: ManifestModel, folder: str) -> None:
    name = folder.rstrip("/").rsplit("/", 1)[-1]
    if manifest.backup_id != name:
        raise ManifestError(f"claims backup id {manifest.backup_id!r} but sits in the folder "
                            f"of {name!r}")
    parts = folder.rstrip("/").split("/")
    target = parts[-5] if len(parts) >= 5 else ""
    if manifest.target != target:
        raise ManifestError(f"claims target {manifest.target!r} but sits in the folder of "
                            f"target {target!r}")
    tail = layout.backup_folder("", manifest.target, manifest.backup_id)
    if "/".join(parts[-5:]) != tail:
        raise ManifestError(f"sits in {folder}, not in the dated folder its id names ({tail})")
    for key in [manifest.key] + [part.key for part in manifest.parts or ()]:
        if not key.startswith(folder.rstrip("/") + "/") or ".." in key:
            raise ManifestError(f"points at {key[:120]!r}, outside its folder {folder}")


def _check_dates(manifest: ManifestModel, not_after: datetime) -> None:
    if layout.backup_time(manifest.backup_id) > not_after:
        raise ManifestError(f"has backup id {manifest.backup_id}, which is in the future")
    for name in ("started_at", "completed_at"):
        when: datetime = getattr(manifest, name)
        if when > not_after:
            raise ManifestError(f"{name} {when.isoformat()} is in the future")
    if manifest.completed_at < manifest.started_at:
        raise ManifestError("completed_at is before started_at")


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the manifest"
    shown = repr(error.get("input"))[:80]
    return f"field {where}: {error['msg']} (got {shown})"


def _depth(value: Any, level: int = 1) -> int:
    """How deeply ``value`` nests (iteratively: no recursion limit to hit)."""
    deepest, stack = level, [(value, level)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest
