"""Database properties on restore: check the target server has what they need, create the
database with its encoding and locale, then set owner, ACL, settings, comment and limits.

Everything here composes SQL with ``sql.Identifier`` / ``sql.Literal``; nothing is pasted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from amprenta_backup.core.dbprops import AclEntry, DatabaseProperties, read_properties
from amprenta_backup.core.errors import first_line
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.server import TargetServer

log = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[Any, ...]]

# contrib modules: shipped with the server (Debian/Ubuntu postgresql-N, RHEL postgresqlN-contrib)
CONTRIB = frozenset(
    "adminpack amcheck autoinc bloom btree_gin btree_gist citext cube dblink dict_int "
    "dict_xsyn earthdistance file_fdw fuzzystrmatch hstore insert_username intagg intarray "
    "isn lo ltree moddatetime old_snapshot pageinspect pg_buffercache pg_freespacemap "
    "pg_prewarm pg_stat_statements pg_surgery pg_trgm pg_visibility pg_walinspect pgcrypto "
    "pgrowlocks pgstattuple postgres_fdw refint seg sslinfo tablefunc tcn tsm_system_rows "
    "tsm_system_time unaccent uuid-ossp xml2".split())
# settings whose value is a list of quoted items (pg_dump's variable_is_guc_list_quote)
LIST_SETTINGS = frozenset({"local_preload_libraries", "search_path", "session_preload_libraries",
                           "shared_preload_libraries", "temp_tablespaces",
                           "unix_socket_directories"})
_C_LOCALES = frozenset({"C", "POSIX"})


@dataclass(frozen=True)
class TargetChecks:
    """What the target server has and lacks for a faithful restore of one database.

    :param missing: each refusal reason, naming what is missing and how to get it
    :param passed: the checks that passed, for the plan
    """

    missing: tuple[str, ...] = ()
    passed: tuple[str, ...] = ()


@dataclass
class PropertiesResult:
    """What a restore set on the database, and anything that did not come out as backed up."""

    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {"applied": self.applied, "skipped": self.skipped,
                "differences": self.differences}


def check_target(db: Connection, props: DatabaseProperties, no_owner: bool,
                 globals_hint: str, coming: frozenset[str] = frozenset()) -> TargetChecks:
    """Check roles, extensions, locale and tablespace on the server ``db`` is connected to.

    :param globals_hint: where the roles are (``backup X's globals at URI``), for messages
    :param coming: roles and tablespaces a globals restore will create before the database
        (a recovery checks every database before it creates anything)
    """
    missing: list[str] = []
    passed: list[str] = []
    major = int(str(db.execute("SHOW server_version_num").fetchone()[0])) // 10000  # type: ignore[index]
    if not no_owner:
        _check_roles(db, props, globals_hint, missing, passed, coming)
    _check_extensions(db, props, major, missing, passed)
    _check_locale(db, props, major, missing, passed)
    if props.tablespace in coming:
        passed.append(f"tablespace {props.tablespace} comes with the globals")
    elif props.tablespace != "pg_default":
        row = db.execute("SELECT 1 FROM pg_tablespace WHERE spcname = %s",
                         (props.tablespace,)).fetchone()
        (passed if row else missing).append(
            f"tablespace {props.tablespace}" + ("" if row else
            " does not exist on the target: restore the globals (after creating its "
            "directory on the server) or create it"))
    return TargetChecks(tuple(missing), tuple(passed))


def _check_roles(db: Connection, props: DatabaseProperties, hint: str, missing: list[str],
                 passed: list[str], coming: frozenset[str]) -> None:
    needed = props.all_roles()
    rows = db.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                      (list(needed),)).fetchall()
    present = {str(r[0]) for r in rows}
    for role in needed:
        if role not in present | coming:
            missing.append(f"role {role} does not exist on the target: restore the globals "
                           f"first ({hint}) or create it, or restore with --no-owner")
    if present:
        passed.append(f"roles {', '.join(sorted(present))} exist")
    arriving = sorted((set(needed) & coming) - present)
    if arriving:
        passed.append(f"roles {', '.join(arriving)} come with the globals")


def _check_extensions(db: Connection, props: DatabaseProperties, major: int,
                      missing: list[str], passed: list[str]) -> None:
    if not props.extensions:
        return
    rows = db.execute("SELECT name, array_agg(version) FROM pg_available_extension_versions "
                      "WHERE name = ANY(%s) GROUP BY name",
                      ([e.name for e in props.extensions],)).fetchall()
    available = {str(name): [str(v) for v in versions] for name, versions in rows}
    for ext in props.extensions:
        if ext.name not in available:
            package = (f"postgresql-contrib (Debian/Ubuntu: postgresql-{major}, RHEL: "
                       f"postgresql{major}-contrib)" if ext.name in CONTRIB
                       else f"postgresql-{major}-{ext.name} or your distribution's package "
                            f"of {ext.name} for PostgreSQL {major}")
            missing.append(f"extension {ext.name} ({ext.version} in the backup) is not "
                           f"available on the target: install {package} on the server")
        elif ext.version not in available[ext.name]:
            passed.append(f"extension {ext.name}: {ext.version} in the backup, the target "
                          f"offers {', '.join(sorted(available[ext.name]))} (the default "
                          "version is installed)")
        else:
            passed.append(f"extension {ext.name} {ext.version} available")


def _check_locale(db: Connection, props: DatabaseProperties, major: int,
                  missing: list[str], passed: list[str]) -> None:
    need = {"icu": 15, "builtin": 17}.get(props.locale_provider)
    if need and major < need:
        missing.append(f"the database uses the {props.locale_provider} locale provider, which "
                       f"PostgreSQL {major} lacks: restore onto PostgreSQL {need} or newer")
        return
    for value in sorted({props.collate, props.ctype} - _C_LOCALES):
        problem = _try_collation(db, "libc", value)
        (missing if problem else passed).append(
            f"locale {value}" + (f" is not usable on the target: {problem}; install it in the "
                                 "server's OS (Debian: locales, then `locale-gen`) and "
                                 "restart the server" if problem else " available"))
    if props.locale_provider == "icu" and props.locale:
        problem = _try_collation(db, "icu", props.locale)
        (missing if problem else passed).append(
            f"ICU locale {props.locale}" + (f" is not usable on the target: {problem}"
                                            if problem else " available"))


def _try_collation(db: Connection, provider: str, locale: str) -> str | None:
    """Create a temporary collation and roll it back: the server loads the locale for real."""
    query = sql.SQL("CREATE COLLATION pg_temp.amprenta_check (provider = {}, locale = {})").format(
        sql.SQL(provider), sql.Literal(locale))
    try:
        with db.transaction(force_rollback=True):
            db.execute(query)
    except psycopg.errors.InsufficientPrivilege:
        return None  # cannot test it here; CREATE DATABASE will tell
    except psycopg.Error as exc:
        return first_line(exc)
    return None


def create_options(props: DatabaseProperties | None, no_owner: bool) -> sql.Composable:
    """The ``CREATE DATABASE`` options after ``TEMPLATE template0``: owner, encoding, locale."""
    if props is None:
        return sql.SQL("")
    parts = [sql.SQL("ENCODING {}").format(sql.Literal(props.encoding)),
             sql.SQL("LC_COLLATE {} LC_CTYPE {}").format(sql.Literal(props.collate),
                                                         sql.Literal(props.ctype))]
    if props.locale_provider != "libc":
        parts.append(sql.SQL("LOCALE_PROVIDER {}").format(sql.SQL(props.locale_provider)))
        option = "ICU_LOCALE" if props.locale_provider == "icu" else "BUILTIN_LOCALE"
        if props.locale:
            parts.append(sql.SQL(option + " {}").format(sql.Literal(props.locale)))
        if props.icu_rules:
            parts.append(sql.SQL("ICU_RULES {}").format(sql.Literal(props.icu_rules)))
    if props.tablespace != "pg_default":
        parts.append(sql.SQL("TABLESPACE {}").format(sql.Identifier(props.tablespace)))
    if not no_owner:
        parts.append(sql.SQL("OWNER {}").format(sql.Identifier(props.owner)))
    return sql.SQL(" ").join(parts)


def describe_create(props: DatabaseProperties | None, no_owner: bool) -> str:
    """The options of :func:`create_options` in words, for the plan."""
    if props is None:
        return ""
    words = [f"ENCODING {props.encoding}", f"LC_COLLATE {props.collate}",
             f"LC_CTYPE {props.ctype}"]
    if props.locale_provider != "libc":
        words.append(f"LOCALE_PROVIDER {props.locale_provider} {props.locale or ''}".rstrip())
    if not no_owner:
        words.append(f"OWNER {props.owner}")
    return " " + " ".join(words)


def setting_value(config: str) -> tuple[str, sql.Composable]:
    """``name=value`` of ``setconfig`` -> (name, the value as SQL), list settings split."""
    name, _, value = config.partition("=")
    if name.lower() not in LIST_SETTINGS:
        return name, sql.Literal(value)
    items = [sql.Literal(item) for item in _split_list(value)]
    return name, sql.SQL(", ").join(items) if items else sql.Literal("")


def _split_list(value: str) -> list[str]:
    """``app, "My Schema"`` -> ``["app", "My Schema"]`` (the server's SplitGUCList)."""
    items: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n:
            break
        if value[i] == '"':
            j, buf = i + 1, []
            while j < n:
                if value[j] == '"':
                    if j + 1 < n and value[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(value[j])
                j += 1
            items.append("".join(buf))
            i = j + 1
        else:
            j = value.find(",", i)
            j = n if j < 0 else j
            items.append(value[i:j].strip())
            i = j
    return items


def property_statements(database: str, props: DatabaseProperties,
                        no_owner: bool) -> list[tuple[str, sql.Composed]]:
    """``(what, statement)`` pairs that set everything CREATE DATABASE did not."""
    db = sql.Identifier(database)
    out: list[tuple[str, sql.Composed]] = []
    for config in props.settings:
        name, value = setting_value(config)
        out.append((f"ALTER DATABASE SET {config}",
                    sql.SQL("ALTER DATABASE {} SET {} TO {}").format(db, sql.Identifier(name),
                                                                     value)))
    if not no_owner:
        for role, configs in sorted(props.role_settings.items()):
            for config in configs:
                name, value = setting_value(config)
                out.append((f"ALTER ROLE {role} IN DATABASE SET {config}",
                            sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} TO {}").format(
                                sql.Identifier(role), db, sql.Identifier(name), value)))
    if props.comment is not None:
        out.append(("COMMENT ON DATABASE", sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            db, sql.Literal(props.comment))))
    if props.connection_limit != -1:
        out.append((f"CONNECTION LIMIT {props.connection_limit}",
                    sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
                        db, sql.Literal(props.connection_limit))))
    out += _acl_statements(db, props, no_owner)
    if props.is_template:
        out.append(("IS_TEMPLATE true", sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(db)))
    return out


def _acl_statements(db: sql.Identifier, props: DatabaseProperties,
                    no_owner: bool) -> list[tuple[str, sql.Composed]]:
    """Start from no privileges at all, then grant each ACL item in order: the result is the
    backed-up ``datacl``, item for item (with --no-owner: only what PUBLIC may do)."""
    if props.acl is None:
        return []
    entries: list[AclEntry] = [e for e in props.acl if e.grantee is None or not no_owner]
    out: list[tuple[str, sql.Composed]] = [
        ("REVOKE ALL FROM PUBLIC", sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))]
    if not no_owner:
        out.append((f"REVOKE ALL FROM {props.owner}", sql.SQL(
            "REVOKE ALL ON DATABASE {} FROM {}").format(db, sql.Identifier(props.owner))))
    for entry in entries:
        grantee = sql.SQL("PUBLIC") if entry.grantee is None else sql.Identifier(entry.grantee)
        plain = [p for p in entry.privileges if p not in entry.grantable]
        for privileges, option in ((plain, ""), (list(entry.grantable), " WITH GRANT OPTION")):
            if privileges:
                out.append((f"GRANT {', '.join(privileges)} TO {entry.grantee or 'PUBLIC'}"
                            + option, sql.SQL("GRANT {} ON DATABASE {} TO {}" + option).format(
                                sql.SQL(", ").join(sql.SQL(p) for p in privileges), db,
                                grantee)))
    return out


def apply_database_properties(conn: PgConnInfo, database: str, props: DatabaseProperties,
                              no_owner: bool = False) -> PropertiesResult:
    """Set ``props`` on ``database`` (already created with :func:`create_options`) and read
    them back: anything that did not come out as backed up is in ``differences``.

    :param conn: the target server (its ``dbname`` is not used)
    """
    result = PropertiesResult()
    if no_owner:
        result.skipped.append(f"owner {props.owner}, role settings and ACL items naming roles "
                              "(--no-owner): the database belongs to the restoring role")
    statements = property_statements(database, props, no_owner)
    with TargetServer(conn) as server:
        for what, statement in statements:
            server.db.execute(statement)
            result.applied.append(what)
    with psycopg.connect(**conn.with_database(database).connect_kwargs()) as db:
        restored = read_properties(db)
    result.differences = property_differences(props, restored, no_owner)
    for problem in result.differences:
        log.warning("database %s: %s", database, problem)
    return result


def property_differences(want: DatabaseProperties, got: DatabaseProperties,
                         no_owner: bool) -> list[str]:
    """The properties of ``got`` that differ from ``want``, in words."""
    skip = {"extensions", "roles", "name", "collation_version"}
    if no_owner:
        skip |= {"owner", "acl", "role_settings"}
    a, b = want.to_dict(), got.to_dict()
    return [f"{key}: {b[key]!r} on the target, {a[key]!r} in the backup"
            for key in sorted(a) if key not in skip and a[key] != b[key]]
