"""Compare two databases: per-table row counts and checksums, plus a schema-only dump diff."""

from __future__ import annotations

import difflib
import re
import subprocess
from collections.abc import Collection, Mapping
from typing import Any

import psycopg
from psycopg import sql

from amprenta_backup.core.childenv import minimal_env
from amprenta_backup.core.pgtools import for_server
from amprenta_backup.sandbox.cluster import find_bin_dir

# Session settings that fix the text form of values, so two servers print rows alike.
_SESSION_SETTINGS = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"
    " SET extra_float_digits = 1; SET bytea_output = 'hex'"
)

_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
ORDER BY 1, 2
"""

# Lines of `pg_dump --schema-only` that differ between two dumps of equal schemas.
_NOISE_PREFIXES = ("\\restrict", "\\unrestrict", "-- Dumped from database version",
                   "-- Dumped by pg_dump version", "SET ", "SELECT pg_catalog.set_config(")

_ENV_TO_KWARG = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user",
                 "PGPASSWORD": "password", "PGSSLMODE": "sslmode"}


def _conninfo(source: Any, dbname: str) -> dict[str, Any]:
    """psycopg kwargs from a cluster object, a libpq env mapping or a conninfo mapping."""
    if hasattr(source, "conninfo"):
        return dict(source.conninfo(dbname))
    if not isinstance(source, Mapping):
        raise TypeError(f"expected a cluster, a PG* env mapping or psycopg kwargs: {source!r}")
    if any(key in source for key in _ENV_TO_KWARG):
        info = {kw: source[env] for env, kw in _ENV_TO_KWARG.items() if env in source}
    else:
        info = dict(source)
    info["dbname"] = dbname
    return info


def _env(source: Any, dbname: str) -> dict[str, str]:
    """A libpq env (PG* variables) from a cluster object or a mapping."""
    if hasattr(source, "env"):
        return dict(source.env(dbname))
    return {**source, "PGDATABASE": dbname}


def table_checksums(cluster_or_conninfo: Any, dbname: str) -> dict[str, tuple[int, str]]:
    """Row count and content md5 of every ordinary table and partition outside system schemas.

    The md5 is over the sorted md5s of each row's text form (``t::text``), so it is
    independent of physical row order and has no 1 GB string_agg limit on big tables.

    :param cluster_or_conninfo: a sandbox cluster, a ``PG*`` env mapping or psycopg kwargs.
    :param dbname: database to read.
    :return: ``{"schema.table": (rows, md5)}``; md5 is the md5 of '' for an empty table.
    """
    result: dict[str, tuple[int, str]] = {}
    with psycopg.connect(**_conninfo(cluster_or_conninfo, dbname), autocommit=True) as conn:
        conn.execute(_SESSION_SETTINGS)
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for schema, table in conn.execute(_TABLES).fetchall():
                query = sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h COLLATE \"C\"),"
                    " '')) FROM (SELECT md5(t::text) AS h FROM {} AS t) AS rows"
                ).format(sql.Identifier(schema, table))
                row = conn.execute(query).fetchone()
                assert row is not None
                result[f"{schema}.{table}"] = (int(row[0]), str(row[1]))
    return result


def server_major(cluster_or_conninfo: Any, dbname: str) -> int:
    """PostgreSQL major of the server behind a cluster object or a mapping."""
    with psycopg.connect(**_conninfo(cluster_or_conninfo, dbname), autocommit=True) as conn:
        return int(conn.info.server_version) // 10000


def schema_dump(env: Mapping[str, str] | Any, dbname: str, pg_dump: str | None = None) -> str:
    """``pg_dump --schema-only --no-owner`` of ``dbname``, without lines that differ by run.

    Dropped: ``\\restrict``/``\\unrestrict`` (random key, PG 15.14+), the version comments
    and the session ``SET``/``set_config`` preamble.

    :param env: the ``PG*`` variables (the password travels only there), or a cluster.
    :param dbname: database to dump.
    :param pg_dump: pg_dump binary; default the one in the PostgreSQL bin directory.
    """
    binary = pg_dump or str(find_bin_dir() / "pg_dump")
    full_env = minimal_env(_env(env, dbname))
    done = subprocess.run([binary, "--schema-only", "--no-owner"], env=full_env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        where = f"{full_env.get('PGHOST')}:{full_env.get('PGPORT')}/{dbname}"
        raise RuntimeError(f"pg_dump --schema-only of {where} failed: {done.stderr.strip()}")
    lines = [line for line in done.stdout.splitlines() if not line.startswith(_NOISE_PREFIXES)]
    return "\n".join(lines) + "\n"


def drop_entries(dump: str, ignore: Collection[tuple[str, str]]) -> str:
    """``dump`` without the archive entries ``(name, type)`` listed, e.g.
    ``("SCHEMA public", "ACL")``: each starts at its ``-- Name: ...; Type: ...;`` header."""
    if not ignore:
        return dump
    lines, kept, skipping = dump.splitlines(), [], False
    for i, line in enumerate(lines):
        if line == "--" and i + 1 < len(lines) and lines[i + 1].startswith("-- "):
            match = re.match(r"-- Name: (.*?); Type: (.*?);", lines[i + 1])
            skipping = match is not None and (match.group(1), match.group(2)) in ignore
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n"


def _table_differences(a: dict[str, tuple[int, str]], b: dict[str, tuple[int, str]]) -> list[str]:
    problems = []
    for name in sorted(a.keys() - b.keys()):
        problems.append(f"table {name}: only in A ({a[name][0]} rows)")
    for name in sorted(b.keys() - a.keys()):
        problems.append(f"table {name}: only in B ({b[name][0]} rows)")
    for name in sorted(a.keys() & b.keys()):
        (rows_a, md5_a), (rows_b, md5_b) = a[name], b[name]
        if rows_a != rows_b:
            problems.append(f"table {name}: row count {rows_a} in A, {rows_b} in B")
        elif md5_a != md5_b:
            problems.append(f"table {name}: same {rows_a} rows but content differs "
                            f"(md5 {md5_a} in A, {md5_b} in B)")
    return problems


def assert_databases_equal(env_a: Mapping[str, str] | Any, db_a: str,
                           env_b: Mapping[str, str] | Any, db_b: str,
                           max_diff_lines: int = 200,
                           ignore: Collection[tuple[str, str]] = ()) -> None:
    """Raise AssertionError listing every table and schema difference between two databases.

    :param env_a: ``PG*`` env mapping (or cluster) for the first server.
    :param db_a: first database.
    :param env_b: ``PG*`` env mapping (or cluster) for the second server.
    :param db_b: second database.
    :param max_diff_lines: cap on the unified schema diff lines in the message.
    :param ignore: schema dump entries ``(name, type)`` left out of the comparison, for a
        difference that is expected (say why where you pass it).
    """
    problems = _table_differences(table_checksums(env_a, db_a), table_checksums(env_b, db_b))
    # one pg_dump for both sides (the lowest major that can read the newer server)
    newer = max(server_major(env_a, db_a), server_major(env_b, db_b))
    pg_dump = for_server("pg_dump", newer).path("pg_dump")
    schema_a = drop_entries(schema_dump(env_a, db_a, pg_dump), ignore)
    schema_b = drop_entries(schema_dump(env_b, db_b, pg_dump), ignore)
    if schema_a != schema_b:
        diff = list(difflib.unified_diff(schema_a.splitlines(), schema_b.splitlines(),
                                         f"A: {db_a}", f"B: {db_b}", lineterm=""))
        if len(diff) > max_diff_lines:
            diff = [*diff[:max_diff_lines], f"... ({len(diff) - max_diff_lines} more lines)"]
        problems.append("schema differs:\n" + "\n".join(diff))
    if problems:
        raise AssertionError(f"databases differ (A = {db_a}, B = {db_b}):\n- "
                             + "\n- ".join(problems))
