"""Restore a server's globals (roles, memberships, per-role settings, tablespaces), additively.

The stored ``pg_dumpall --globals-only`` SQL is read back (sha256 and size checked), parsed
with PostgreSQL's own parser (pglast), and each statement is run on its own only when it is
about something this restore created: a role that exists on the target is left exactly as it
is (and reported), nothing is ever dropped, the target's bootstrap superuser is never touched.
A tablespace whose directory does not exist on the target is reported, not created.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pglast
import psycopg
import zstandard
from pglast import ast
from pglast.enums import ObjectType

from amprenta_backup.core.encryption import (
    KeyService,
    decrypting,
    envelope_of,
    globals_identity,
    open_key,
)
from amprenta_backup.core.errors import ChecksumMismatch, PreconditionError, first_line
from amprenta_backup.core.models import GlobalsRef, Manifest
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.server import TargetServer
from amprenta_backup.core.storage.base import Storage

log = logging.getLogger(__name__)

MAX_GLOBALS_BYTES = 256 * 1024 * 1024
_RESTRICT = re.compile(r"^\\(un)?restrict [A-Za-z0-9]+$", re.M)  # psql meta-commands (15.14+)
_GRANTED_BY = re.compile(r"\s+GRANTED\s+BY\s+(\"(?:[^\"]|\"\")+\"|\S+)\s*$", re.I)
_SESSION_SETTINGS = ("default_transaction_read_only", "standard_conforming_strings")


@dataclass
class GlobalsRestoreResult:
    """What restoring one server's globals did (or, for a dry run, would do).

    :param created_roles: roles this restore created (with their attributes and settings)
    :param existing_roles: roles that exist on the target: left exactly as they are
    :param memberships: role memberships granted (only to roles this restore created)
    :param tablespaces_created: tablespaces created
    :param problems: what could not be restored, and what to do about it
    :param skipped: statements not run, and why
    :param role_passwords: False when the backup holds no password hashes
    """

    globals_id: str
    source: str
    target_server: str
    dry_run: bool
    role_passwords: bool
    created_roles: list[str] = field(default_factory=list)
    existing_roles: list[str] = field(default_factory=list)
    memberships: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    tablespaces_created: list[str] = field(default_factory=list)
    tablespaces_existing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def notes(self) -> list[str]:
        """What a person must do after this restore."""
        notes = list(self.problems)
        if not self.role_passwords and self.created_roles:
            notes.append("the backup holds no role passwords (the source connection could not "
                         "read pg_authid, so the globals were taken with --no-role-passwords): "
                         "set them with ALTER ROLE ... PASSWORD for "
                         + ", ".join(self.created_roles))
        return notes

    @property
    def message(self) -> str:
        verb = "would create" if self.dry_run else "created"
        parts = [f"globals {self.globals_id} onto {self.target_server}: {verb} "
                 f"{len(self.created_roles)} roles ({', '.join(self.created_roles) or 'none'})",
                 f"{len(self.existing_roles)} existing roles left as they are "
                 f"({', '.join(self.existing_roles) or 'none'})",
                 f"{len(self.memberships)} memberships, {len(self.settings)} role settings, "
                 f"{len(self.tablespaces_created)} tablespaces"]
        return "; ".join(parts + self.notes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "notes": self.notes}


@dataclass(frozen=True)
class _Statement:
    text: str
    node: ast.Node


def read_globals_sql(storage: Storage, ref: GlobalsRef, keys: KeyService | None = None) -> str:
    """The globals SQL, proven intact (sha256 and size against the manifest, every chunk's tag
    when encrypted)."""
    data = storage.get_bytes(ref.key)
    problems = []
    if ref.sha256 and hashlib.sha256(data).hexdigest() != ref.sha256:
        problems.append(f"sha256 is {hashlib.sha256(data).hexdigest()}, expected {ref.sha256}")
    if len(data) != ref.stored_bytes:
        problems.append(f"{len(data)} bytes stored, expected {ref.stored_bytes}")
    if problems:
        raise ChecksumMismatch(f"the globals {storage.uri(ref.key)} are corrupt: "
                               f"{'; '.join(problems)}; nothing was restored")
    envelope = envelope_of(ref.encryption)
    if envelope is not None:
        identity = globals_identity(ref.globals_id, ref.key)
        key = open_key(keys, envelope, identity, f"the globals {ref.globals_id}")
        data = decrypting(io.BytesIO(data), key, envelope, identity,
                          storage.uri(ref.key)).read_all()
    if ref.compression != "none":
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
        data = reader.read(MAX_GLOBALS_BYTES)
    return data.decode("utf-8")


def parse_globals(text: str) -> list[_Statement]:
    """The statements of ``pg_dumpall --globals-only`` output, each with its parse tree."""
    cleaned = _RESTRICT.sub("", text)
    try:
        parsed = pglast.parse_sql(cleaned)
    except pglast.parser.ParseError as exc:
        raise PreconditionError(f"the globals SQL does not parse ({exc}); nothing was "
                                "restored") from None
    out = []
    for raw in parsed:
        location = raw.stmt_location or 0
        length = raw.stmt_len or len(cleaned) - location
        if raw.stmt is not None:
            out.append(_Statement(cleaned[location:location + length].strip(), raw.stmt))
    return out


def restore_globals(storage: Storage, ref: GlobalsRef, conn: PgConnInfo,
                    dry_run: bool = False, keys: KeyService | None = None
                    ) -> GlobalsRestoreResult:
    """Create the roles and tablespaces of ``ref`` that ``conn``'s server lacks.

    :param storage: where the globals are
    :param ref: which globals (``manifest.globals_ref()``)
    :param conn: the target server (its ``dbname`` is not used)
    :param dry_run: report what would be done; change nothing
    :param keys: opens encrypted globals
    """
    started = time.monotonic()
    statements = parse_globals(read_globals_sql(storage, ref, keys))
    with TargetServer(conn) as server:
        result = GlobalsRestoreResult(globals_id=ref.globals_id, source=storage.uri(ref.key),
                                      target_server=server.describe(), dry_run=dry_run,
                                      role_passwords=ref.role_passwords)
        _Applier(server.db, result, dry_run).run(statements)
    result.seconds = round(time.monotonic() - started, 3)
    log.info("%s", result.message)
    return result


def globals_of(manifest: Manifest) -> GlobalsRef:
    """The globals a backup names, or a PreconditionError for backups taken without them."""
    ref = manifest.globals_ref()
    if ref is None:
        raise PreconditionError(f"backup {manifest.backup_id} was taken before backups held the "
                                "server's globals; take a new backup, or create the roles by "
                                "hand")
    return ref


class _Applier:
    """Runs the statements that concern what this restore creates; records the rest."""

    def __init__(self, db: psycopg.Connection[tuple[Any, ...]], result: GlobalsRestoreResult,
                 dry_run: bool) -> None:
        self.db = db
        self.result = result
        self.dry_run = dry_run
        self.roles = {str(r[0]) for r in db.execute("SELECT rolname FROM pg_roles").fetchall()}
        self.tablespaces = {str(r[0]) for r in
                            db.execute("SELECT spcname FROM pg_tablespace").fetchall()}
        self.created: set[str] = set()
        self.created_spaces: set[str] = set()

    def run(self, statements: list[_Statement]) -> None:
        for statement in statements:
            self._one(statement)

    def _one(self, st: _Statement) -> None:
        node = st.node
        if isinstance(node, ast.VariableSetStmt):
            if node.name in _SESSION_SETTINGS:
                self._execute(st.text)
        elif isinstance(node, ast.CreateRoleStmt):
            self._create_role(st, str(node.role))
        elif isinstance(node, ast.AlterRoleStmt | ast.AlterRoleSetStmt):
            self._about_role(st, _role_name(node.role))
        elif isinstance(node, ast.GrantRoleStmt):
            self._membership(st, node)
        elif isinstance(node, ast.CreateTableSpaceStmt):
            self._tablespace(st, node)
        elif isinstance(node, ast.CommentStmt | ast.SecLabelStmt):
            self._comment(st, node)
        elif isinstance(node, ast.GrantStmt) and not _is_tablespace(node.objtype):
            self._grant_to_roles(st, [_role_name(r) for r in node.grantees or ()])
        elif isinstance(node, ast.AlterTableSpaceOptionsStmt | ast.GrantStmt):
            self._about_tablespace(st, _tablespace_of(node))
        else:
            self.result.skipped.append(f"{type(node).__name__} is not part of restoring "
                                       f"globals: not run ({_redact(st.text)[:120]})")

    def _create_role(self, st: _Statement, role: str) -> None:
        if role in self.roles:
            self.result.existing_roles.append(role)
            return
        if role.startswith("pg_"):
            self.result.skipped.append(f"role {role}: names starting pg_ are reserved")
            return
        if self._execute(st.text, f"creating role {role}"):
            self.created.add(role)
            self.result.created_roles.append(role)

    def _about_role(self, st: _Statement, role: str | None) -> None:
        if role in self.created:
            if self._execute(st.text, f"role {role}") and isinstance(st.node,
                                                                   ast.AlterRoleSetStmt):
                self.result.settings.append(_redact(st.text))
        elif role not in self.result.existing_roles:
            self.result.skipped.append(f"{_redact(st.text)[:120]}: role {role} was not created "
                                       "by this restore")

    def _membership(self, st: _Statement, node: ast.GrantRoleStmt) -> None:
        members = [_role_name(r) for r in node.grantee_roles or ()]
        granted = [str(p.priv_name) for p in node.granted_roles or ()]
        if not all(m in self.created for m in members):
            self.result.skipped.append(f"{st.text}: {', '.join(str(m) for m in members)} "
                                       "existed before this restore; its memberships are left "
                                       "as they are")
            return
        missing = [g for g in granted if g not in self.roles | self.created]
        if missing:
            self.result.problems.append(f"{st.text}: role {', '.join(missing)} does not exist")
            return
        if not self._execute(st.text, None):
            # the grantor may not exist here (or may not be allowed to grant, 16+)
            bare = _GRANTED_BY.sub("", st.text.rstrip(";"))
            if not self._execute(bare, f"granting {', '.join(granted)}"):
                return
        self.result.memberships.append(st.text)

    def _grant_to_roles(self, st: _Statement, grantees: list[str | None]) -> None:
        """``GRANT SET ON PARAMETER ...`` (15+): only to roles this restore created."""
        if grantees and all(g in self.created for g in grantees):
            self._execute(st.text, "granting a parameter privilege")
        else:
            self.result.skipped.append(f"{st.text[:120]}: not every grantee was created by "
                                       "this restore")

    def _tablespace(self, st: _Statement, node: ast.CreateTableSpaceStmt) -> None:
        name, location = str(node.tablespacename), str(node.location or "")
        if name in self.tablespaces:
            self.result.tablespaces_existing.append(name)
            return
        if location and not self._directory_exists(location):
            self.result.problems.append(
                f"tablespace {name}: its location {location} does not exist on the target "
                "server: create that directory (empty, owned by the server's OS user) and "
                "restore the globals again, or restore the databases that use it with "
                "pg_restore --no-tablespaces")
            return
        if self._execute(st.text, f"creating tablespace {name}"):
            self.created_spaces.add(name)
            self.result.tablespaces_created.append(name)

    def _directory_exists(self, location: str) -> bool:
        try:
            with self.db.transaction():
                row = self.db.execute("SELECT (pg_stat_file(%s, true)).isdir",
                                      (location,)).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            return True  # cannot look: CREATE TABLESPACE will say
        return bool(row and row[0])

    def _comment(self, st: _Statement, node: ast.CommentStmt | ast.SecLabelStmt) -> None:
        name = str(getattr(node.object, "sval", node.object))
        if _is_tablespace(node.objtype):
            self._about_tablespace(st, name)
        else:
            self._about_role(st, name)

    def _about_tablespace(self, st: _Statement, name: str | None) -> None:
        if name in self.created_spaces:
            self._execute(st.text, f"tablespace {name}")
        else:
            self.result.skipped.append(f"{_redact(st.text)[:120]}: tablespace {name} was not "
                                       "created by this restore")

    def _execute(self, text: str, what: str | None = "") -> bool:
        """Run one statement on its own; a failure is recorded (unless ``what`` is None)."""
        if self.dry_run:
            return True
        try:
            self.db.execute(text.encode())
            return True
        except psycopg.Error as exc:
            if what is not None:
                self.result.problems.append(f"{what or _redact(text)[:80]}: {first_line(exc)}")
            return False


def _is_tablespace(objtype: Any) -> bool:
    return bool(objtype == ObjectType.OBJECT_TABLESPACE)


def _role_name(spec: Any) -> str | None:
    return str(spec.rolename) if spec is not None and spec.rolename else None


def _tablespace_of(node: Any) -> str | None:
    if isinstance(node, ast.AlterTableSpaceOptionsStmt):
        return str(node.tablespacename)
    if _is_tablespace(node.objtype) and node.objects:
        return str(getattr(node.objects[0], "sval", node.objects[0]))
    return None


def _redact(text: str) -> str:
    """``PASSWORD '...'`` hidden, for reports and logs."""
    return re.sub(r"PASSWORD\s+'(?:[^']|'')*'", "PASSWORD '********'", text)
