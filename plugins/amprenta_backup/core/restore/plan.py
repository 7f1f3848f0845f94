"""RestorePlan: what a restore would do where (the dry run), and every reason to refuse it."""

from __future__ import annotations

import difflib
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import sql

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.connections import Resolver
from amprenta_backup.core.dbprops import DatabaseProperties
from amprenta_backup.core.errors import (
    BackupDamaged,
    BackupError,
    ChecksumMismatch,
    ConfigError,
    PreconditionError,
)
from amprenta_backup.core.identifiers import SYSTEM_DATABASES
from amprenta_backup.core.models import RESTORABLE, BackupRecord, Manifest, Status
from amprenta_backup.core.pgtools import PgConnInfo, for_dump, server_major
from amprenta_backup.core.readback import check_free_space
from amprenta_backup.core.restore.properties import check_target, describe_create
from amprenta_backup.core.restore.request import LATEST, NEW_DATABASE, REPLACE, RestoreRequest
from amprenta_backup.core.restore.server import TargetServer, temporary_name
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.verify import folder_of, record_mismatches

_QUALIFIED = re.compile(r'^("(?:[^"]|"")+"|[^".]+)\.("(?:[^"]|"")+"|[^".]+)$')


@dataclass(frozen=True)
class RestorePlan:
    """What a restore will do; everything in it was checked against storage and the server.

    :param request: the request it answers
    :param backup_id: the backup to restore (``latest`` resolved)
    :param source_target: the backup's target
    :param source_database: the database the backup was taken from
    :param location: URI of the dump object
    :param target_server: ``user@host:port`` restored onto
    :param database: the database restored into
    :param database_exists: whether it exists now
    :param table_counts: rows per selected table in the manifest
    :param schemas_to_create: schemas created before a filtered pg_restore (which restores a
        schema's objects but not the schema itself)
    :param steps: what will happen, in order
    :param properties: the database's properties in the manifest (None in older backups)
    :param checks: what was checked on the target server (roles, extensions, locale)
    """

    request: RestoreRequest
    backup_id: str
    source_target: str
    source_database: str
    backup_started_at: datetime
    location: str
    sha256: str | None
    stored_bytes: int
    raw_bytes: int
    target_server: str
    database: str
    database_exists: bool
    table_counts: dict[str, int]
    schemas_to_create: tuple[str, ...]
    steps: tuple[str, ...]
    manifest: Manifest = field(repr=False, compare=False)
    conn: PgConnInfo = field(repr=False, compare=False)
    properties: DatabaseProperties | None = field(default=None, repr=False, compare=False)
    checks: tuple[str, ...] = ()
    pg_restore: str | None = field(default=None, compare=False)
    pg_restore_version: str = ""

    def target_env(self) -> dict[str, str]:
        """The libpq environment of the restored database (password only in PGPASSWORD)."""
        return self.conn.with_database(self.database).env()

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request.to_dict(), "backup_id": self.backup_id,
                "source_target": self.source_target, "source_database": self.source_database,
                "backup_started_at": self.backup_started_at.isoformat(),
                "location": self.location, "sha256": self.sha256,
                "stored_bytes": self.stored_bytes, "raw_bytes": self.raw_bytes,
                "target_server": self.target_server, "database": self.database,
                "database_exists": self.database_exists, "table_counts": self.table_counts,
                "rows": sum(self.table_counts.values()),
                "schemas_to_create": list(self.schemas_to_create), "steps": list(self.steps),
                "checks": list(self.checks),
                "properties": self.properties.to_dict() if self.properties else None,
                "pg_restore_version": self.pg_restore_version}

    def text(self) -> str:
        """The plan for people: one line per fact, then the numbered steps."""
        lines = [
            f"backup    {self.backup_id} of {self.source_target} (database "
            f"{self.source_database!r}, taken {self.backup_started_at:%Y-%m-%d %H:%M:%S} UTC)",
            f"from      {self.location} ({self.stored_bytes} bytes stored, {self.raw_bytes} "
            "bytes of dump)",
            f"into      database {self.database!r} on {self.target_server} "
            f"({'exists' if self.database_exists else 'does not exist yet'}), "
            f"mode {self.request.mode}",
            f"tables    {len(self.table_counts)} with {sum(self.table_counts.values())} rows "
            "(from the manifest)",
            f"tools     pg_restore {self.pg_restore_version} for a dump of pg_dump "
            f"{self.manifest.pg_dump_version}",
        ]
        lines += [f"checked   {check}" for check in self.checks]
        lines += [f"  {n}. {step}" for n, step in enumerate(self.steps, start=1)]
        return "\n".join(lines)


def split_qualified(name: str) -> tuple[str, str]:
    """``app.orders`` or ``"données"."café"`` (``format('%I.%I')``) -> (schema, table)."""
    match = _QUALIFIED.match(name)
    if not match:
        return "", name
    schema, table = match.groups()
    return _unquote(schema), _unquote(table)


def _unquote(part: str) -> str:
    return part[1:-1].replace('""', '"') if part.startswith('"') else part


def selected(request: RestoreRequest, counts: Mapping[str, int]) -> dict[str, int]:
    """The tables of ``counts`` (manifest row counts) that the schema/table filters select."""
    keep = {}
    for name, rows in counts.items():
        schema, table = split_qualified(name)
        if request.schemas and schema not in request.schemas:
            continue
        if request.tables and table not in request.tables:
            continue
        keep[name] = rows
    return keep


def check_filters(request: RestoreRequest, manifest: Manifest) -> None:
    """Refuse a schema or table filter that selects nothing in the backup, naming the close
    matches: a typo must not restore an empty database and call it a success."""
    names = [split_qualified(name) for name in manifest.table_counts]
    problems = []
    schemas = sorted({schema for schema, _ in names})
    for schema in request.schemas:
        if schema not in schemas:
            problems.append(f"no schema {schema!r}" + _matches(
                difflib.get_close_matches(schema, schemas, n=5, cutoff=0.6)))
    in_scope = sorted({(schema, table) for schema, table in names
                       if not request.schemas or schema in request.schemas})
    tables = sorted({table for _, table in in_scope})
    for table in request.tables:
        if table not in tables:
            where = f" in schemas {', '.join(request.schemas)}" if request.schemas else ""
            close = set(difflib.get_close_matches(table, tables, n=5, cutoff=0.6))
            problems.append(f"no table {table!r}{where}" + _matches(
                [f"{s}.{t}" for s, t in in_scope if t in close]))
    if problems:  # in words for the CLI's --table and the form's field alike
        schema, table = in_scope[0] if in_scope else ("app", "orders")
        raise PreconditionError(
            f"backup {manifest.backup_id} of {manifest.target} has {'; '.join(problems)}. "
            f"Nothing was restored. Give names as the backup lists them (`amprenta-backup show "
            f"{manifest.backup_id}`: {len(manifest.table_counts)} tables), a table without its "
            f"schema ({table}, not {schema}.{table})")


def _matches(close: list[str]) -> str:
    return f"; close matches: {', '.join(close)}" if close else ""


def make_plan(storage: Storage, catalog: Catalog, resolve: Resolver, request: RestoreRequest,
              workdir: str | None = None) -> RestorePlan:
    """Check ``request`` against the catalog, storage and the target server; touch nothing.

    Raises PreconditionError (or ConfigError) naming the reason for every refusal.
    """
    _check_request(request)
    record = _find_backup(catalog, request)
    manifest = load_manifest(storage, record)
    check_filters(request, manifest)
    source_conn_id = _source_conn_id(resolve, manifest)
    conn_id = request.target_conn_id or source_conn_id
    if conn_id is None:
        raise ConfigError(f"the connection backup {record.backup_id} was taken through "
                          f"({manifest.target}) is not defined here; give target_conn_id")
    conn = resolve(conn_id, request.database)
    props = DatabaseProperties.from_dict(manifest.properties) if manifest.properties else None
    with TargetServer(conn) as server:
        exists = server.exists(request.database)
        target_server = server.describe()
        pg_restore = for_dump(manifest.pg_dump_version, server_major(server.db))
        checks = _check_target(server, storage, manifest, props, request.no_owner)
    if _is_source(resolve, request, manifest, conn, conn_id, source_conn_id):
        if request.mode != REPLACE:
            raise PreconditionError(
                f"database {request.database!r} on {target_server} is the database backup "
                f"{record.backup_id} was taken from; restoring over it needs mode replace with "
                f"confirm={request.database!r} (and the approval step in Airflow)")
    if request.mode == NEW_DATABASE and exists:
        raise PreconditionError(
            f"database {request.database!r} already exists on {target_server}; it was left "
            f"untouched. Restore into a new name, or use mode replace with "
            f"confirm={request.database!r}")
    if request.jobs > 1 and not request.dry_run:
        check_free_space(Path(workdir or tempfile.gettempdir()), manifest.raw_bytes,
                         "set TMPDIR to a larger folder, or use jobs=1 (streams, no file)")
    tables = selected(request, manifest.table_counts)
    schemas: tuple[str, ...] = ()
    if request.schemas or request.tables:
        found = {split_qualified(name)[0] for name in tables} | set(request.schemas)
        schemas = tuple(sorted(found - {"", "public"}))
    return RestorePlan(
        request=request, backup_id=record.backup_id, source_target=manifest.target,
        source_database=manifest.database, backup_started_at=manifest.started_at,
        location=storage.uri(manifest.key), sha256=manifest.sha256,
        stored_bytes=manifest.stored_bytes, raw_bytes=manifest.raw_bytes,
        target_server=target_server, database=request.database, database_exists=exists,
        table_counts=tables, schemas_to_create=schemas,
        steps=_steps(request, storage.uri(manifest.key), exists, target_server, schemas, props),
        manifest=manifest, conn=conn, properties=props, checks=checks,
        pg_restore=pg_restore.path("pg_restore"), pg_restore_version=pg_restore.version)


def _check_target(server: TargetServer, storage: Storage, manifest: Manifest,
                  props: DatabaseProperties | None, no_owner: bool) -> tuple[str, ...]:
    """Roles, extensions, locale and tablespace on the target; refuses before anything is
    created, naming each thing missing and how to get it."""
    if props is None:
        return ("the backup records no database properties (taken before they were recorded):"
                " the database is created with the server's defaults",)
    ref = manifest.globals_ref()
    hint = (f"it is in backup {manifest.backup_id}'s globals at {storage.uri(ref.key)}; "
            f"`amprenta-backup restore-globals {manifest.backup_id}`" if ref
            else "this backup has no globals")
    checks = check_target(server.db, props, no_owner, hint)
    if checks.missing:
        raise PreconditionError(
            f"restore of backup {manifest.backup_id} into {server.describe()} refused, nothing "
            "was created: " + "; ".join(checks.missing))
    return checks.passed


def _check_request(request: RestoreRequest) -> None:
    if request.database in SYSTEM_DATABASES:
        raise PreconditionError(f"refusing to restore into the system database "
                                f"{request.database!r}; choose another name")
    if request.mode == REPLACE and request.confirm != request.database:
        raise PreconditionError(
            f"mode replace drops database {request.database!r}: type its name again as "
            f"confirm={request.database!r} to go ahead (confirm was {request.confirm!r})")
    if request.mode == REPLACE and (request.schemas or request.tables):
        raise ConfigError(
            f"mode replace with a schema or table filter would replace database "
            f"{request.database!r} with part of the backup and discard every other schema "
            "and table in it; restore the subset into a new database (mode new_database) "
            "instead, or drop the filters to replace the whole database")


def _find_backup(catalog: Catalog, request: RestoreRequest) -> BackupRecord:
    if request.backup_id == LATEST:
        found = catalog.find(target=layout.target_name(request.latest_of),
                             statuses=RESTORABLE, limit=1)
        if not found:
            raise PreconditionError(
                f"target {request.latest_of!r} has no completed backup to restore; "
                "`amprenta-backup list` shows the targets and their backups")
        return found[0]
    record = catalog.get(request.backup_id)
    if record is None:
        raise PreconditionError(
            f"no backup {request.backup_id!r} in the catalog; `amprenta-backup list` shows the "
            "ids (or `amprenta-backup rebuild-catalog` if the catalog was lost)")
    if record.status not in RESTORABLE:
        why = f" ({record.error})" if record.error else ""
        refusal = f"backup {record.backup_id} is {record.status}{why} and cannot be restored"
        if record.status == Status.CORRUPT:  # damaged here: a second copy may still be good
            raise BackupDamaged(f"{refusal}; restore it from the second copy (--from-copy) if "
                                "there is one, or choose another backup", record.backup_id)
        raise PreconditionError(f"{refusal}; choose another backup")
    return record


def load_manifest(storage: Storage, record: BackupRecord) -> Manifest:
    """The manifest in storage of a catalog record; BackupDamaged if missing or unreadable,
    ChecksumMismatch if it describes another backup than the record (:func:`check_manifest`)."""
    key = layout.manifest_key(folder_of(storage, record))
    if not storage.exists(key):
        raise BackupDamaged(f"backup {record.backup_id} is CORRUPT: manifest missing: "
                            f"{storage.uri(key)}; choose another backup", record.backup_id)
    try:
        manifest = Manifest.from_json(storage.get_bytes(key))
    except (ValueError, TypeError, KeyError) as exc:
        raise BackupDamaged(f"backup {record.backup_id} is CORRUPT: the manifest "
                            f"{storage.uri(key)} is unreadable ({exc}); choose another backup",
                            record.backup_id) from None
    check_manifest(record, manifest, storage.uri(key))
    return manifest


def check_manifest(record: BackupRecord, manifest: Manifest, uri: str) -> None:
    """The folder must hold the backup the catalog recorded: the same id, target, sha256 and
    size. Otherwise it holds another backup's objects (copied or moved there) or was
    rewritten, and restoring it would bring back the wrong data."""
    problems = record_mismatches(record, manifest)
    if problems:
        raise ChecksumMismatch(
            f"backup {record.backup_id} of target {record.target} is CORRUPT: the manifest at "
            f"{uri} does not match the catalog record ({'; '.join(problems)}); nothing was "
            "restored. Restore another backup; to find out what is in that folder, compare "
            "it with `amprenta-backup show`", backup_id=record.backup_id)


def _source_conn_id(resolve: Resolver, manifest: Manifest) -> str | None:
    """The connection id the backup was taken through, if it is defined here."""
    safe_db = re.sub(r"[^A-Za-z0-9_.-]", "_", manifest.database)
    candidates = [manifest.target]
    if manifest.target.endswith("." + safe_db):
        candidates.append(manifest.target[: -len(safe_db) - 1])
    for candidate in candidates:
        try:
            resolve(candidate, manifest.database)
            return candidate
        except BackupError:
            continue
    return None


def _is_source(resolve: Resolver, request: RestoreRequest, manifest: Manifest,
               conn: PgConnInfo, conn_id: str, source_conn_id: str | None) -> bool:
    if request.database != manifest.database or source_conn_id is None:
        return False
    if conn_id == source_conn_id:
        return True
    source = resolve(source_conn_id, manifest.database)
    return (source.host, source.port) == (conn.host, conn.port)


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier, for messages and plans people read."""
    return sql.Identifier(name).as_string(None)


def _steps(request: RestoreRequest, uri: str, exists: bool, server: str,
           schemas: tuple[str, ...], props: DatabaseProperties | None) -> tuple[str, ...]:
    steps = [f"read {uri} back and check its sha256 and size against the manifest"
             + (", into a temporary file" if request.jobs > 1 else "")]
    database = quote_ident(request.database)
    replace = request.mode == REPLACE
    into = quote_ident(temporary_name(request.database, "<8 hex>")) if replace else database
    steps.append(f"CREATE DATABASE {into} TEMPLATE template0"
                 + describe_create(props, request.no_owner)
                 + (f" (a temporary database: {database} is not touched until the swap; the "
                    "server needs room for both)" if replace else ""))
    if schemas:
        steps.append(f"CREATE SCHEMA {', '.join(quote_ident(s) for s in schemas)} (a filtered "
                     "pg_restore brings a schema's objects, not the schema)")
    only = [f"schemas {', '.join(request.schemas)}"] if request.schemas else []
    only += [f"tables {', '.join(request.tables)}"] if request.tables else []
    steps.append(f"pg_restore --jobs={request.jobs}"
                 + (" --no-owner --no-privileges" if request.no_owner else "")
                 + (f" (only {'; '.join(only)})" if only else "")
                 + ("" if request.jobs > 1 else ", streamed from storage"))
    if props is not None:
        steps.append(_properties_step(props, request.no_owner))
    steps.append("count the rows of every restored table and compare with the manifest")
    if not replace:
        steps.append("if pg_restore fails, drop the partly restored database")
        return tuple(steps)
    swap = f"ALTER DATABASE {into} RENAME TO {database}"
    steps.append(f"only if all of that succeeded: DROP DATABASE {database} WITH (FORCE) on "
                 f"{server} (ends its sessions; its data is lost), then {swap}" if exists
                 else f"only if all of that succeeded: {swap}")
    steps.append(f"if anything before that fails, drop the temporary database; {database} is "
                 "left untouched")
    return tuple(steps)


def _properties_step(props: DatabaseProperties, no_owner: bool) -> str:
    what = [f"{len(props.settings)} database settings"] if props.settings else []
    if props.role_settings and not no_owner:
        what.append(f"settings of roles {', '.join(sorted(props.role_settings))} in it")
    if props.comment is not None:
        what.append("the comment")
    if props.connection_limit != -1:
        what.append(f"CONNECTION LIMIT {props.connection_limit}")
    if props.acl is not None:
        what.append("the ACL (" + "; ".join(e.describe() for e in props.acl
                                            if e.grantee is None or not no_owner) + ")")
    return ("set the database properties as backed up: " + (", ".join(what) or "none to set")
            + (" (--no-owner: owner, role settings and ACL items naming roles left out)"
               if no_owner else ""))
