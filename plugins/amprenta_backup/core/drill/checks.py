"""Checks of a restored database's data: row counts, constraints, sequences, user assertions.

Constraints are re-checked by querying the data, not with ``ALTER TABLE ... VALIDATE
CONSTRAINT`` (a no-op on constraints already marked valid): an anti-join per foreign key and
``count(*) ... WHERE NOT (expression)`` per CHECK constraint, identifiers quoted through
``psycopg.sql``. A constraint the source marked ``NOT VALID`` is checked the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from amprenta_backup.core.backup.rowcount import count_rows
from amprenta_backup.core.drill.assertions import Assertion
from amprenta_backup.core.errors import ConnectionSettingsError, first_line
from amprenta_backup.core.health import CheckResult, Level
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.pgtools import PgConnInfo

Db = psycopg.Connection[tuple[Any, ...]]
_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")
_USER = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"

FOREIGN_KEYS = f"""
SELECT c.conname, n.nspname, t.relname, t.relkind = 'p', fn.nspname, f.relname,
       f.relkind = 'p', c.confmatchtype = 'f',
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(num, pos)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.pos),
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(num, pos)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num ORDER BY k.pos)
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_class f ON f.oid = c.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace
WHERE c.contype = 'f' AND c.conparentid = 0 AND {_USER}
ORDER BY 2, 3, 1
"""

CHECK_CONSTRAINTS = f"""
SELECT n.nspname, t.relname, c.conname, pg_get_expr(c.conbin, c.conrelid)
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.contype = 'c' AND t.relkind = 'r' AND {_USER}
ORDER BY 1, 2, 3
"""

# every column whose type is a domain (or a domain over domains) with CHECK constraints
DOMAIN_CHECKS = f"""
WITH RECURSIVE chain(column_type, domain) AS (
    SELECT oid, oid FROM pg_type WHERE typtype = 'd'
    UNION ALL
    SELECT chain.column_type, t.typbasetype FROM chain JOIN pg_type t ON t.oid = chain.domain
    JOIN pg_type b ON b.oid = t.typbasetype WHERE b.typtype = 'd'
)
SELECT n.nspname, t.relname, a.attname, dn.nspname || '.' || d.typname, c.conname,
       pg_get_expr(c.conbin, 0)
FROM pg_attribute a
JOIN pg_class t ON t.oid = a.attrelid AND t.relkind = 'r'
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN chain ON chain.column_type = a.atttypid
JOIN pg_constraint c ON c.contypid = chain.domain AND c.contype = 'c'
JOIN pg_type d ON d.oid = chain.domain JOIN pg_namespace dn ON dn.oid = d.typnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND {_USER}
ORDER BY 1, 2, 3, 5
"""
_VALUE = re.compile(r"\bVALUE\b")
_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")

SEQUENCE_COLUMNS = f"""
SELECT DISTINCT ON (s.oid, t.oid, a.attnum)
       sn.nspname, s.relname, n.nspname, t.relname, a.attname, q.seqincrement,
       has_sequence_privilege(s.oid, 'SELECT'), link.how
FROM (SELECT d.objid, d.refobjid, d.refobjsubid,
             CASE d.deptype WHEN 'i' THEN 'identity' ELSE 'owned by' END, 1
      FROM pg_depend d
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
        AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
      UNION ALL
      SELECT d.refobjid, ad.adrelid, ad.adnum, 'default', 2
      FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
      WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
     ) AS link(seq, tab, col, how, rank)
JOIN pg_class s ON s.oid = link.seq AND s.relkind = 'S'
JOIN pg_sequence q ON q.seqrelid = s.oid
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_class t ON t.oid = link.tab AND t.relkind IN ('r', 'p')
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = link.col
WHERE a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) AND {_USER}
ORDER BY s.oid, t.oid, a.attnum, link.rank
"""


def run_checks(conn: PgConnInfo, manifest: Manifest, assertions: Sequence[Assertion] = (),
               target: str | None = None, statement_timeout: float = 300.0
               ) -> list[CheckResult]:
    """Every check of the restored database ``conn`` against the backup's ``manifest``.

    :param conn: the restored (scratch) database
    :param manifest: the backup's manifest: row counts and the time the backup was taken
    :param assertions: user-defined assertions; those for other targets are left out
    :param target: the backup target, stamped on every result
    :param statement_timeout: seconds each user assertion may run
    """
    try:
        db: Db = psycopg.connect(**conn.connect_kwargs(), autocommit=True)
    except psycopg.Error as exc:
        raise ConnectionSettingsError(f"cannot connect to the restored database "
                                      f"{conn.describe()}: {conn.redact(str(exc).strip())}"
                                      ) from None
    with db:
        results = [_guarded(name, check, db, manifest) for name, check in _BUILT_IN]
        for assertion in assertions:
            if target is None or assertion.applies_to(target):
                results.append(run_assertion(db, assertion, manifest, statement_timeout))
    return [CheckResult(r.name, r.status, r.detail, r.hint, target) for r in results]


def _guarded(name: str, check: Any, db: Db, manifest: Manifest) -> CheckResult:
    """Run one built-in check; a query that fails makes the check critical, not the drill crash."""
    try:
        result: CheckResult = check(db, manifest)
        return result
    except psycopg.Error as exc:
        return CheckResult(name, Level.CRITICAL, f"the check could not run: {first_line(exc)}",
                           "give the drill connection's role read access to every table")


def check_row_counts(db: Db, manifest: Manifest) -> CheckResult:
    """Every table has exactly the rows the manifest counted at backup time."""
    if not manifest.table_counts:
        return CheckResult("row_counts", Level.WARNING, "the manifest holds no row counts",
                           "take a new backup: manifests record row counts since version 1")
    restored = count_rows(db)
    wrong = []
    for table in sorted(set(restored) | set(manifest.table_counts)):
        got, want = restored.get(table), manifest.table_counts.get(table)
        if got != want:
            wrong.append(f"{table}: {_count(got)} restored, manifest says {_count(want)}")
    if wrong:
        return CheckResult("row_counts", Level.CRITICAL, "; ".join(wrong),
                           "the restore lost or gained rows: inspect the dump and pg_restore log")
    return CheckResult("row_counts", Level.OK, f"{len(restored)} tables, "
                       f"{sum(restored.values())} rows, equal to the manifest")


def check_foreign_keys(db: Db, _manifest: Manifest) -> CheckResult:
    """No row references a missing row (anti-join per foreign key, MATCH FULL respected)."""
    keys = db.execute(FOREIGN_KEYS).fetchall()
    broken = []
    for name, schema, table, parted, rschema, rtable, rparted, full, cols, rcols in keys:
        child, parent = sql.Identifier("c"), sql.Identifier("p")
        match = sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}.{}").format(parent, sql.Identifier(r), child, sql.Identifier(c))
            for c, r in zip(cols, rcols, strict=True))
        values = sql.SQL(", ").join(sql.SQL("{}.{}").format(child, sql.Identifier(c))
                                    for c in cols)
        orphan = sql.SQL("num_nulls({v}) = 0 AND NOT EXISTS (SELECT 1 FROM {ro}{rt} AS {p} "
                         "WHERE {m})").format(v=values, ro=_only(rparted),
                                               rt=sql.Identifier(rschema, rtable), p=parent,
                                               m=match)
        if full and len(cols) > 1:
            orphan = sql.SQL("({}) OR (num_nulls({v}) > 0 AND num_nonnulls({v}) > 0)").format(
                orphan, v=values)
        query = sql.SQL("SELECT count(*) FROM {o}{t} AS {c} WHERE {w}").format(
            o=_only(parted), t=sql.Identifier(schema, table), c=child, w=orphan)
        rows = db.execute(query).fetchone()
        if rows and rows[0]:
            broken.append(f"{name}: {rows[0]} rows of {_qual(schema, table)} ({', '.join(cols)}) "
                          f"reference no row of {_qual(rschema, rtable)} ({', '.join(rcols)})")
    if broken:
        return CheckResult("foreign_keys", Level.CRITICAL, "; ".join(broken),
                           "the source holds rows its foreign keys forbid (a NOT VALID key?)")
    return CheckResult("foreign_keys", Level.OK, f"{len(keys)} foreign keys hold")


def _on_column(expression: str, column: str) -> str:
    """A domain CHECK expression with ``VALUE`` replaced by the quoted ``column`` (not inside
    string literals or quoted names)."""
    name = sql.Identifier(column).as_string(None)
    return "".join(part if index % 2 else _VALUE.sub(name, part)
                   for index, part in enumerate(_QUOTED.split(expression)))


def _constraints_by_table(db: Db) -> tuple[dict[tuple[str, str], list[tuple[str, str]]],
                                           int, int, int]:
    """``(schema, table) -> [(what, expression)]`` for the CHECK constraints of tables and of
    the domains of their columns; and how many table constraints, domain constraints and
    domain-typed columns that is."""
    by_table: dict[tuple[str, str], list[tuple[str, str]]] = {}
    rows = db.execute(CHECK_CONSTRAINTS).fetchall()
    for schema, table, name, expr in rows:
        by_table.setdefault((schema, table), []).append((name, expr))
    domains, columns = set(), set()
    for schema, table, column, domain, name, expr in db.execute(DOMAIN_CHECKS).fetchall():
        domains.add((domain, name))
        columns.add((schema, table, column))
        by_table.setdefault((schema, table), []).append(
            (f"{name} of domain {domain} on column {column}", _on_column(expr, column)))
    return by_table, len(rows), len(domains), len(columns)


def check_constraints(db: Db, _manifest: Manifest) -> CheckResult:
    """Every row satisfies every CHECK constraint, of its table and of the domains of its
    columns (a domain's CHECK is not re-checked by a restore either): one scan per table."""
    by_table, tables, domains, columns = _constraints_by_table(db)
    broken = []
    for (schema, table), constraints in by_table.items():
        counts = sql.SQL(", ").join(
            sql.SQL("count(*) FILTER (WHERE NOT ({}))").format(sql.SQL(expr))
            for _name, expr in constraints)
        query = sql.SQL("SELECT {} FROM ONLY {}").format(counts, sql.Identifier(schema, table))
        row = db.execute(query).fetchone() or ()
        broken += [f"{name} on {_qual(schema, table)}: {bad} rows violate CHECK ({expr})"
                   for (name, expr), bad in zip(constraints, row, strict=True) if bad]
    if broken:
        return CheckResult("check_constraints", Level.CRITICAL, "; ".join(broken),
                           "the source holds rows its CHECK constraints forbid (NOT VALID?)")
    return CheckResult("check_constraints", Level.OK,
                       f"{tables + domains} CHECK constraints hold: {tables} of tables, "
                       f"{domains} of domains (on {columns} columns)")


def check_sequences(db: Db, _manifest: Manifest) -> CheckResult:
    """No sequence would hand out a value its column already holds."""
    links = db.execute(SEQUENCE_COLUMNS).fetchall()
    behind, unreadable = [], []
    for sschema, seq, schema, table, column, step, readable, how in links:
        if not readable:
            unreadable.append(_qual(sschema, seq))
            continue
        last = db.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
            sql.Identifier(sschema, seq))).fetchone()
        span = db.execute(sql.SQL("SELECT max({c}), min({c}) FROM {t}").format(
            c=sql.Identifier(column), t=sql.Identifier(schema, table))).fetchone()
        if not last or not span or span[0] is None:
            continue
        following = last[0] + step if last[1] else last[0]
        if (step > 0 and following <= span[0]) or (step < 0 and following >= span[1]):
            edge = span[0] if step > 0 else span[1]
            behind.append(f"{_qual(sschema, seq)} ({how} {_qual(schema, table)}.{column}) "
                          f"would hand out {following} next, the column already holds {edge}")
    if behind:
        return CheckResult("sequences", Level.CRITICAL, "; ".join(behind),
                           "new rows would collide: setval() each sequence to its column's "
                           "max on the source, and check how it fell behind")
    if unreadable:
        return CheckResult("sequences", Level.WARNING, f"no SELECT privilege on "
                           f"{', '.join(unreadable)}", "let the drill role read the sequences")
    sequences = {(sschema, seq) for sschema, seq, *_rest in links}
    return CheckResult("sequences", Level.OK, f"{len(sequences)} sequences ahead of the "
                       f"{len(links)} columns they fill")


def run_assertion(db: Db, assertion: Assertion, manifest: Manifest,
                  statement_timeout: float) -> CheckResult:
    """One user assertion in a read-only transaction that is rolled back, with a timeout.

    The statement is sent prepared (extended protocol): exactly one statement, so a ``;``
    cannot end the read-only transaction and run more.
    """
    name = f"assertion:{assertion.name}"
    try:
        with db.transaction(force_rollback=True), db.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute("SELECT set_config('statement_timeout', %s, true)",
                        (f"{int(statement_timeout * 1000)}ms",))
            cur.execute(assertion.sql.encode(), prepare=True)
            rows = cur.fetchmany(2) if cur.description else None
            width = len(cur.description or ())
    except psycopg.Error as exc:
        return CheckResult(name, Level.CRITICAL, f"{_short(assertion.sql)} failed: "
                           f"{first_line(exc)}", "fix the assertion's SQL "
                           "(BACKUP_DRILL_ASSERTIONS); it runs read-only, one statement")
    if rows is None or len(rows) != 1 or width != 1:
        shape = "no result" if rows is None else f"{len(rows)}{'+' if len(rows) > 1 else ''} " \
            f"rows of {width} columns"
        return CheckResult(name, Level.CRITICAL, f"{_short(assertion.sql)} returned {shape}; an "
                           "assertion must return exactly one value", "return one row, one "
                           "column (e.g. SELECT count(*) ...)")
    problem = assertion.expect.check(rows[0][0], manifest.started_at)
    if problem:
        return CheckResult(name, Level.CRITICAL, f"{_short(assertion.sql)}: {problem}")
    return CheckResult(name, Level.OK, f"{_short(assertion.sql)} = {rows[0][0]!r:.60}, "
                       f"expected {assertion.expect.text}")


_BUILT_IN = (("row_counts", check_row_counts), ("foreign_keys", check_foreign_keys),
             ("check_constraints", check_constraints), ("sequences", check_sequences))


def _only(partitioned: bool) -> sql.Composable:
    """``ONLY``, except for a partitioned table whose rows all live in its partitions."""
    return sql.SQL("") if partitioned else sql.SQL("ONLY ")


def _qual(schema: str, table: str) -> str:
    """``app.orders``, quoting only the names that need it (as ``format('%I.%I')`` does)."""
    return ".".join(part if _PLAIN.match(part) else sql.Identifier(part).as_string(None)
                    for part in (schema, table))


def _count(value: int | None) -> str:
    return "no table" if value is None else f"{value} rows"


def _short(query: str) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= 80 else flat[:77] + "..."
