"""Load a verified export into a target database: one transaction, all or nothing.

Every table's rows are first copied into a temporary stage table (``COPY ... FROM STDIN``),
so conflicts can be counted and keys remapped before anything reaches the target. When every
target table is empty there can be no conflict, and tables without late foreign keys are
copied straight into the target (the fast path of an import into a new database).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from amprenta_backup.core.errors import PreconditionError
from amprenta_backup.core.export.archive import ExportArchive
from amprenta_backup.core.export.graph import ForeignKey, SchemaGraph, Table, read_graph
from amprenta_backup.core.export.manifest import DDL_MEMBER, TableData
from amprenta_backup.core.export.plan import (
    POLICIES,
    LoadOrder,
    check_compatible,
    load_order,
    missing_tables,
)

log = logging.getLogger(__name__)
_RESTRICT = re.compile(rb"^\\(un)?restrict [A-Za-z0-9]+$", re.M)  # psql meta-commands
_SAMPLE = 5


class ImportConflict(PreconditionError):
    """Rows of the export whose keys the target already holds (policy ``fail``)."""


@dataclass
class TableReport:
    """What happened to one table's rows: ``present`` ones the target held unchanged (not
    loaded again), ``conflicts`` with the same key and other content."""

    table: str
    rows: int = 0
    loaded: int = 0
    present: int = 0
    conflicts: int = 0
    skipped: int = 0
    remapped: int = 0
    sample: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """The outcome of an import (or of its dry run)."""

    export_id: str
    database: str
    policy: str
    dry_run: bool
    created_schema: bool = False
    bytes_verified: int = 0
    tables: list[TableReport] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return sum(t.loaded for t in self.tables)

    def text(self) -> str:
        """What was (or would be) loaded, a line per table."""
        head = (f"export {self.export_id} into {self.database} (policy {self.policy}"
                f"{', schema created' if self.created_schema else ''}"
                f"{', dry run: rolled back' if self.dry_run else ''})")
        lines = [f"  {t.table}: {t.loaded} rows" + "".join(
            f", {n} {what}" for what, n in (("already there", t.present),
                                           ("conflicting", t.conflicts),
                                           ("skipped", t.skipped), ("remapped", t.remapped))
            if n) for t in self.tables]
        return "\n".join([head, *lines])

    def to_dict(self) -> dict[str, Any]:
        return {"export_id": self.export_id, "database": self.database, "policy": self.policy,
                "dry_run": self.dry_run, "created_schema": self.created_schema,
                "bytes_verified": self.bytes_verified, "rows_loaded": self.loaded,
                "sequences_reset": self.sequences,
                "tables": [vars(t) for t in self.tables]}


class Loader:
    """Loads ``archive`` into the database ``db`` (its open transaction; the caller commits
    or rolls back).

    :param policy: what to do with rows whose primary key the target holds: ``fail``,
        ``skip`` (keep the target's row) or ``remap`` (new keys from the column's default,
        its sequence, and every foreign key to them rewritten)
    """

    def __init__(self, archive: ExportArchive, db: psycopg.Connection[Any], policy: str,
                 report: ImportReport) -> None:
        if policy not in POLICIES:
            raise PreconditionError(f"conflict policy {policy!r}: use one of "
                                    f"{', '.join(POLICIES)}")
        self.archive = archive
        self.db = db
        self.cur = db.cursor(row_factory=tuple_row)
        self.policy = policy
        self.report = report
        self.graph: SchemaGraph = archive.manifest.schema_graph()
        self.order: LoadOrder = load_order(self.graph)
        self.data = {t.table: t for t in archive.manifest.tables}
        self._index = {name: i for i, name in enumerate(self.order.tables)}
        # table -> column -> the table whose ``_amprenta_map_N`` renumbered it in the stage
        self._renumbered: dict[str, dict[str, str]] = {}

    def run(self) -> None:
        target = read_graph(self.db)
        missing = missing_tables(self.graph, target)
        if missing and len(missing) == len(self.graph.tables):
            self._create_schema()
            target = read_graph(self.db)
        check_compatible(self.db, self.graph, target, self.order)
        self.target = target
        reports = {t: TableReport(t, rows=self.data[t].rows) for t in self.order.tables}
        self.report.tables = [reports[t] for t in self.order.tables]
        if all(not self._has_rows(t) for t in self.order.tables):
            self._load_into_empty(reports)
        else:
            for name in self.order.tables:
                self._copy(name, self._stage(name))
            for name in self.order.tables:
                self._resolve(name, reports[name])
            if self.policy == "fail" and any(r.conflicts for r in reports.values()):
                raise ImportConflict(_conflict_message(self.report))
            for name in self.order.tables:
                reports[name].loaded = self._insert(name)
        for fk in self.order.late:
            self._rewrite(fk)
            self._set_late(fk)
        self.report.sequences = self._reset_sequences()

    def _load_into_empty(self, reports: dict[str, TableReport]) -> None:
        """No conflict is possible: tables without late foreign keys are copied straight in."""
        for name in self.order.tables:
            if self.order.late_of(name):
                self._copy(name, self._stage(name))
                reports[name].loaded = self._insert(name)
            else:
                reports[name].loaded = self._copy(name, self.graph.tables[name].ident)

    def _create_schema(self) -> None:
        with self.archive.open(DDL_MEMBER) as handle:
            ddl = _RESTRICT.sub(b"", handle.read())
        log.info("import: the target has none of the export's tables; creating them from %s",
                 DDL_MEMBER)
        self.cur.execute(ddl)
        self.cur.execute("SELECT pg_catalog.set_config('search_path', '', false)")
        self.report.created_schema = True

    def _has_rows(self, name: str) -> bool:
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(self.graph.tables[name].ident)
        row = self.cur.execute(query).fetchone()
        return bool(row and row[0])

    def _stage(self, name: str) -> sql.Identifier:
        stage = sql.Identifier(f"_amprenta_stage_{self._index[name]}")
        columns = self._columns(name)
        self.cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} "
                                 "WITH NO DATA").format(
            stage, columns, self.graph.tables[name].ident))
        return stage

    def _columns(self, name: str, alias: str | None = None,
                 nulled: tuple[str, ...] = ()) -> sql.Composed:
        parts: list[sql.Composable] = []
        for column in self.data[name].columns:
            ident = sql.Identifier(alias, column) if alias else sql.Identifier(column)
            parts.append(sql.SQL("NULL") if column in nulled else ident)
        return sql.SQL(", ").join(parts)

    def _copy(self, name: str, into: sql.Identifier) -> int:
        member = self.data[name].file
        if member is None or self.data[name].rows == 0:
            return 0
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER)").format(
            into, self._columns(name))
        with self.archive.open(member.path) as handle, self.cur.copy(statement) as copy:
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        return self.data[name].rows

    def stage_of(self, name: str) -> sql.Identifier:
        return sql.Identifier(f"_amprenta_stage_{self._index[name]}")

    def _key_match(self, table: Table, left: str, right: str) -> sql.Composed:
        return sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier(left, k), sql.Identifier(right, k))
            for k in table.key)

    def _resolve(self, name: str, report: TableReport) -> None:
        """Rewrite foreign keys to remapped parents; drop the rows the target already holds
        unchanged; count the conflicts (same key, other content) and apply the policy."""
        for fk in self.graph.parents_of(name):
            if fk not in self.order.late:
                self._rewrite(fk)
        table = self.target.tables[name]
        if not table.key or list(table.key) != list(self.graph.tables[name].key):
            return  # no primary key (or another one): nothing can conflict on it
        stage = self.stage_of(name)
        same_key = sql.SQL("EXISTS (SELECT 1 FROM {} t WHERE {}").format(
            table.ident, self._key_match(table, "s", "t"))
        same_row = sql.SQL("ROW({})::text = ROW({})::text").format(
            self._columns(name, "s"), self._columns(name, "t"))
        self.cur.execute(sql.SQL("DELETE FROM {} s WHERE {} AND {})").format(
            stage, same_key, same_row))
        report.present = self.cur.rowcount
        conflicting = sql.SQL("{})").format(same_key)
        keys = sql.SQL(", ").join(sql.Identifier("s", k) for k in table.key)
        rows = self.cur.execute(sql.SQL("SELECT ({})::text FROM {} s WHERE {}").format(
            keys, stage, conflicting)).fetchall()
        report.conflicts = len(rows)
        report.sample = [str(r[0]) for r in rows[:_SAMPLE]]
        if not rows or self.policy == "fail":
            return
        if self.policy == "skip":
            self.cur.execute(sql.SQL("DELETE FROM {} s WHERE {}").format(stage, conflicting))
            report.skipped = self.cur.rowcount
        else:
            report.remapped = self._remap(name, table, conflicting)

    def _remap(self, name: str, table: Table, conflicting: sql.Composable) -> int:
        """New keys for the conflicting rows: ``_amprenta_map_N (old, new)``."""
        if len(table.key) != 1:
            raise PreconditionError(
                f"{name}: {len(table.key)}-column key ({', '.join(table.key)}) conflicts and "
                "none of its columns was renumbered; remap draws new values for single-column "
                "keys only (and rewrites every column that references one, in composite keys "
                "too); use --on-conflict skip, or fail")
        column = table.key[0]
        new = self._new_key(name, table, column)
        stage, mapping = self.stage_of(name), self._map(name)
        col = sql.Identifier(column)
        self.cur.execute(sql.SQL(
            "CREATE TEMPORARY TABLE {map} ON COMMIT DROP AS SELECT s.{col} AS old, {new} AS new "
            "FROM {stage} s WHERE {conflicting}").format(
            map=mapping, col=col, new=new, stage=stage, conflicting=conflicting))
        count = self.cur.rowcount
        self.cur.execute(sql.SQL("UPDATE {stage} s SET {col} = m.new FROM {map} m "
                                 "WHERE s.{col} = m.old").format(stage=stage, col=col,
                                                                 map=mapping))
        self._renumbered.setdefault(name, {})[column] = name
        return count

    def _map(self, name: str) -> sql.Identifier:
        return sql.Identifier(f"_amprenta_map_{self._index[name]}")

    def _new_key(self, name: str, table: Table, column: str) -> sql.Composable:
        """``nextval`` of the key's sequence (moved past every key in the target and the
        export first), or the column's default expression."""
        row = self.cur.execute("SELECT pg_get_serial_sequence(%s, %s)",
                               (table.ident.as_string(self.db), column)).fetchone()
        if row and row[0]:
            col = sql.Identifier(column)
            start = sql.SQL("greatest((SELECT max({col}) FROM {t}), (SELECT max({col}) FROM {s}),"
                            " (SELECT last_value FROM {seq}))").format(
                col=col, t=table.ident, s=self.stage_of(name), seq=sql.SQL(row[0]))
            if not self.report.dry_run:
                self.cur.execute(sql.SQL("SELECT setval(%s::regclass, {})").format(start),
                                 (row[0],))
                return sql.SQL("nextval({})").format(sql.Literal(row[0]))
            # sequences are not transactional: a dry run draws from a temporary copy
            first = self.cur.execute(sql.SQL("SELECT {} + 1").format(start)).fetchone()
            dry = sql.Identifier(f"_amprenta_seq_{self._index[name]}")
            self.cur.execute(sql.SQL("CREATE TEMPORARY SEQUENCE {} START {}").format(
                dry, sql.Literal(int(first[0]) if first else 1)))
            return sql.SQL("nextval({})").format(sql.Literal(dry.as_string(self.db)))
        default = self.cur.execute(
            "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a ON "
            "a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = %s::regclass "
            "AND a.attname = %s", (table.ident.as_string(self.db), column)).fetchone()
        if not default:
            raise PreconditionError(f"{name}.{column} conflicts and has no sequence or default "
                                    "to draw new keys from; use --on-conflict skip, or fail")
        return sql.SQL(str(default[0]))

    def _rewrite(self, fk: ForeignKey) -> None:
        """Point ``fk``'s columns in the child's stage at the new values of the parent's
        renumbered columns: a remapped key, or a column of a composite key that references
        one (``annotations.sample_id`` through ``measurements(sample_id, seq, taken_on)``)."""
        renumbered = self._renumbered.get(fk.parent, {})
        done = self._renumbered.setdefault(fk.child, {})
        pairs = [(c, renumbered[p]) for c, p in zip(fk.child_columns, fk.parent_columns,
                                                    strict=True)
                 if p in renumbered and c not in done]  # once: new values are not old ones
        if not pairs or not self._staged(fk.child):
            return
        for column, owner in pairs:
            col = sql.Identifier(column)
            self.cur.execute(sql.SQL("UPDATE {stage} s SET {col} = m.new FROM {map} m "
                                     "WHERE s.{col} = m.old").format(
                stage=self.stage_of(fk.child), col=col, map=self._map(owner)))
            done[column] = owner

    def _staged(self, name: str) -> bool:
        row = self.cur.execute("SELECT to_regclass(%s)",
                               (f"pg_temp._amprenta_stage_{self._index[name]}",)).fetchone()
        return bool(row and row[0])

    def _insert(self, name: str) -> int:
        late = tuple(c for fk in self.order.late_of(name) for c in fk.child_columns)
        self.cur.execute(sql.SQL(
            "INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {values} FROM {s} s").format(
            t=self.graph.tables[name].ident, cols=self._columns(name),
            values=self._columns(name, "s", late), s=self.stage_of(name)))
        return self.cur.rowcount

    def _set_late(self, fk: ForeignKey) -> None:
        """Set a late foreign key's columns from the stage, now that every parent is in."""
        table = self.target.tables[fk.child]
        if not table.key:
            raise PreconditionError(f"{fk.describe()} is part of a cycle and {fk.child} has no "
                                    "primary key to set it by")
        assignments = sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c))
                                         for c in fk.child_columns)
        self.cur.execute(sql.SQL("UPDATE {t} t SET {set} FROM {s} s WHERE {match}").format(
            t=table.ident, set=assignments, s=self.stage_of(fk.child),
            match=self._key_match(table, "t", "s")))

    def _reset_sequences(self) -> list[str]:
        """Move every sequence of an imported column past the largest value now there."""
        moved = []
        for name in self.order.tables:
            table = self.target.tables[name]
            for column in table.column_names:
                row = self.cur.execute("SELECT pg_get_serial_sequence(%s, %s)",
                                       (table.ident.as_string(self.db), column)).fetchone()
                if not row or not row[0]:
                    continue
                if self.report.dry_run:  # what would move, without moving it
                    self.cur.execute(sql.SQL(
                        "SELECT m FROM (SELECT max({c}) AS m FROM {t}) x, {seq} q WHERE m IS NOT "
                        "NULL AND m > q.last_value").format(c=sql.Identifier(column),
                                                            t=table.ident, seq=sql.SQL(row[0])))
                    if self.cur.fetchone():
                        moved.append(row[0])
                    continue
                self.cur.execute(sql.SQL(
                    "SELECT setval(%s::regclass, m) FROM (SELECT max({c}) AS m FROM {t}) x, "
                    "{seq} q WHERE m IS NOT NULL AND m > q.last_value").format(
                    c=sql.Identifier(column), t=table.ident, seq=sql.SQL(row[0])), (row[0],))
                if self.cur.fetchone():
                    moved.append(row[0])
        return moved


def _conflict_message(report: ImportReport) -> str:
    parts = [f"{t.table}: {t.conflicts} (e.g. {', '.join(t.sample)})"
             for t in report.tables if t.conflicts]
    return (f"the target database {report.database} already holds rows with the keys of "
            f"{sum(t.conflicts for t in report.tables)} exported rows: {'; '.join(parts)}; "
            "nothing was written. Choose --on-conflict skip (keep the target's rows) or remap "
            "(give the exported rows new keys)")


__all__ = ["ImportConflict", "ImportReport", "Loader", "TableData"]
