"""Dataclasses of the engine: statuses, backup records and manifests."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from amprenta_backup.core.constants import MANIFEST_VERSION


class Status(StrEnum):
    """Lifecycle of a backup record."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    VERIFIED = "verified"
    CORRUPT = "corrupt"
    DELETED = "deleted"


RESTORABLE = (Status.COMPLETED, Status.VERIFIED)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def human_bytes(count: int | float | None) -> str:
    """A size as people read it: ``512 B``, ``1.5 KiB``, ``2.3 GiB``; ``-`` when unknown."""
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class RunContext:
    """Who asked for a backup: the Airflow run, or a person at a terminal.

    :param dag_id: Airflow DAG id, if any
    :param run_id: Airflow run id, if any
    :param logical_date: the run's logical date (or its run_after for manual runs)
    :param task_id: Airflow task id, if any
    :param try_number: Airflow try number, if any
    """

    dag_id: str | None = None
    run_id: str | None = None
    logical_date: datetime | None = None
    task_id: str | None = None
    try_number: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["logical_date"] = _iso(self.logical_date)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunContext:
        return cls(
            dag_id=data.get("dag_id"),
            run_id=data.get("run_id"),
            logical_date=_parse_time(data.get("logical_date")),
            task_id=data.get("task_id"),
            try_number=data.get("try_number"),
        )


@dataclass
class Manifest:
    """What a restore, a verify or an auditor needs to know about one stored backup.

    Written last, as ``manifest.json`` beside the dump: no manifest, no backup.
    """

    backup_id: str
    target: str
    database: str
    kind: str
    key: str
    format: str
    compression: str
    stored_bytes: int
    raw_bytes: int
    sha256: str | None
    started_at: datetime
    completed_at: datetime
    server_version: str
    pg_dump_version: str
    table_counts: dict[str, int] = field(default_factory=dict)
    run: RunContext = field(default_factory=RunContext)
    version: int = MANIFEST_VERSION
    wal: dict[str, Any] | None = None  # base backups: WAL range (core/wal/ranges.py WalRange)
    globals: dict[str, Any] | None = None  # the server's roles and tablespaces: GlobalsRef
    properties: dict[str, Any] | None = None  # the database's own: core/dbprops.py
    encryption: dict[str, Any] | None = None  # the dump's envelope: core/encryption (v3)
    parts: list[dict[str, Any]] | None = None  # a parallel dump's objects: DumpPart (v4)

    def dump_parts(self) -> list[DumpPart]:
        """The objects of a parallel dump (empty for a single-stream dump)."""
        return [DumpPart.from_dict(part) for part in self.parts or ()]

    def objects(self) -> list[Manifest]:
        """Every dump object as a manifest of its own (key, sizes, sha256, envelope): the
        one dump of a single-stream backup, else each part of a parallel one, the schema
        part first. Read, verify and download each like a single-file backup."""
        if not self.parts:
            return [self]
        return [dataclasses.replace(self, key=p.key, sha256=p.sha256,
                                    stored_bytes=p.stored_bytes, raw_bytes=p.raw_bytes,
                                    encryption=p.encryption, parts=None,
                                    format=PART_FORMAT)
                for p in self.dump_parts()]

    def globals_ref(self) -> GlobalsRef | None:
        """The globals object of this backup's server and run (None in older backups)."""
        return GlobalsRef.from_dict(self.globals) if self.globals else None

    @property
    def duration_seconds(self) -> float:
        return (self.completed_at - self.started_at).total_seconds()

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.stored_bytes if self.stored_bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = _iso(self.started_at)
        data["completed_at"] = _iso(self.completed_at)
        data["run"] = self.run.to_dict()
        data["duration_seconds"] = round(self.duration_seconds, 3)
        return data

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        data = json.loads(raw)
        data.pop("duration_seconds", None)
        data["started_at"] = _parse_time(data["started_at"])
        data["completed_at"] = _parse_time(data["completed_at"])
        data["run"] = RunContext.from_dict(data.get("run") or {})
        return cls(**data)


PART_FORMAT = "pg_dump-custom"  # each object of a parallel dump is a custom-format archive


@dataclass(frozen=True)
class DumpPart:
    """One object of a parallel dump: ``pg_dump -Fc`` of the whole database but the data of
    the tables in the other parts (``section="all"``), or the data of some tables only
    (``section="data"``), all taken on one exported snapshot.

    :param key: storage key of the object
    :param section: ``all`` (schema, the other tables' data, sequences, large objects) or
        ``data`` (only the data of ``tables``)
    :param tables: the tables whose data this part holds (``schema.table``); empty for ``all``
    :param sha256: sha256 of the stored bytes
    :param stored_bytes: bytes stored
    :param raw_bytes: bytes of the archive before compression
    :param encryption: its envelope when encrypted (each object has its own data key)
    """

    key: str
    section: str
    tables: tuple[str, ...]
    sha256: str | None
    stored_bytes: int
    raw_bytes: int
    encryption: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tables"] = list(self.tables)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DumpPart:
        return cls(**{**data, "tables": tuple(data.get("tables") or ())})


@dataclass(frozen=True)
class GlobalsRef:
    """One server's roles and tablespaces (``pg_dumpall --globals-only``) of one run.

    Stored once per server per run under ``{prefix}/_globals/``; every manifest of that
    server in the run names it.

    :param globals_id: id of its own, derived from the run (same on every try)
    :param server: the server, as a folder name (``host-port``)
    :param key: storage key of the (zstd) SQL
    :param sha256: sha256 of the stored bytes
    :param role_passwords: False when the connection could not read ``pg_authid`` (managed
        services) and the globals were taken with ``--no-role-passwords``
    """

    globals_id: str
    server: str
    key: str
    sha256: str | None
    stored_bytes: int
    raw_bytes: int
    compression: str
    role_passwords: bool
    taken_at: datetime
    server_version: str
    pg_dumpall_version: str
    roles: tuple[str, ...] = ()
    tablespaces: tuple[str, ...] = ()
    encryption: dict[str, Any] | None = None  # the SQL's envelope: core/encryption

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["taken_at"] = _iso(self.taken_at)
        data["roles"], data["tablespaces"] = list(self.roles), list(self.tablespaces)
        return data

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GlobalsRef:
        values = dict(data)
        values["taken_at"] = _parse_time(values["taken_at"])
        values["roles"] = tuple(values.get("roles") or ())
        values["tablespaces"] = tuple(values.get("tablespaces") or ())
        return cls(**values)

    @classmethod
    def from_json(cls, raw: bytes | str) -> GlobalsRef:
        return cls.from_dict(json.loads(raw))


@dataclass
class BackupRecord:
    """One row of the catalog's ``backup_records`` table.

    :param backup_id: unique id, also the last folder of its storage location
    :param target: target name (``conn_id`` or ``conn_id.database``)
    :param status: lifecycle status
    :param location: URI of the folder holding the dump and its manifest
    :param error: what failed, naming the step; never contains a secret
    """

    backup_id: str
    target: str
    status: Status
    location: str
    started_at: datetime
    database: str = ""
    kind: str = "logical"
    completed_at: datetime | None = None
    stored_bytes: int | None = None
    raw_bytes: int | None = None
    sha256: str | None = None
    error: str | None = None
    run: RunContext = field(default_factory=RunContext)
    manifest: Manifest | None = None

    @property
    def id(self) -> str:
        """The backup id, as the spec's ``engine.list_backups()[0].id`` reads it."""
        return self.backup_id

    @property
    def duration_seconds(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()

    def to_dict(self, manifest: bool = False) -> dict[str, Any]:
        """The record as JSON-able values (times in ISO 8601); the manifest if asked for."""
        return {"backup_id": self.backup_id, "target": self.target, "status": str(self.status),
                "location": self.location, "database": self.database, "kind": self.kind,
                "started_at": _iso(self.started_at), "completed_at": _iso(self.completed_at),
                "duration_seconds": self.duration_seconds, "stored_bytes": self.stored_bytes,
                "raw_bytes": self.raw_bytes, "sha256": self.sha256, "error": self.error,
                "run": self.run.to_dict(),
                **({"manifest": self.manifest.to_dict() if self.manifest else None}
                   if manifest else {})}


@dataclass(frozen=True)
class ObjectInfo:
    """One object in storage."""

    key: str
    size: int
    last_modified: datetime
