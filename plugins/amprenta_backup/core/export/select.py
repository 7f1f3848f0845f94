"""Which rows belong to the chosen projects, computed in SQL inside the export's snapshot.

Each involved table gets temporary tables of row keys (its primary key, or ``tableoid, ctid``
when it has none; ``ctid`` is stable inside one snapshot): ``all`` (selected so far), ``new``
(found in the last round) and ``cand`` (found in this round). The walk is semi-naive: each
round follows the foreign keys out of the rows found in the round before, so self-references
and cycles end when a round finds nothing new.

1. down: the root rows, then every row that references a selected row (children,
   grandchildren, many-to-many link rows), repeatedly;
2. up: every row a selected row references (lookups, parents), repeatedly. Rows reached on
   the way up are not followed down again: that would pull in other projects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from amprenta_backup.core.errors import PreconditionError
from amprenta_backup.core.export.graph import ForeignKey, SchemaGraph, Table

log = logging.getLogger(__name__)

DOWN, UP = "down", "up"
_SYSTEM_KEY = (("tableoid", "oid"), ("ctid", "tid"))


class Selection:
    """The selected rows of every table of ``graph``, held in temporary tables.

    :param cur: a cursor of the export's REPEATABLE READ transaction
    :param graph: the involved tables (:meth:`SchemaGraph.involved`)
    """

    def __init__(self, cur: psycopg.Cursor[Any], graph: SchemaGraph) -> None:
        self.cur = cur
        self.graph = graph
        self._index = {name: i for i, name in enumerate(graph.tables)}
        self._found_by: dict[str, set[str]] = {name: set() for name in graph.tables}

    def key_columns(self, table: Table) -> list[tuple[str, str]]:
        """``(column, type)`` of the row key: the primary key, else ``tableoid, ctid``."""
        if table.key:
            return [(k, c.type) for k in table.key if (c := table.column(k)) is not None]
        return list(_SYSTEM_KEY)

    def _temp(self, kind: str, table: str) -> sql.Identifier:
        return sql.Identifier(f"_amprenta_{kind}_{self._index[table]}")

    def _keys(self, table: str, alias: str) -> sql.Composed:
        cols = [sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name))
                for name, _ in self.key_columns(self.graph.tables[table])]
        return sql.SQL(", ").join(cols)

    def _temp_columns(self, table: str) -> sql.Composed:
        n = len(self.key_columns(self.graph.tables[table]))
        return sql.SQL(", ").join(sql.Identifier(f"k{i}") for i in range(n))

    def create(self) -> None:
        """The temporary tables (dropped with the session)."""
        for name, table in self.graph.tables.items():
            cols = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(f"k{i}"), sql.SQL(type_))
                for i, (_, type_) in enumerate(self.key_columns(table)))
            for kind in ("all", "new", "cand"):
                self.cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} ({})").format(
                    self._temp(kind, name), cols))

    def seed(self, root: Table, column: str, project_ids: Sequence[str]) -> None:
        """Select the root rows whose ``column`` is one of ``project_ids``; PreconditionError
        naming the ids that match no row."""
        col = root.column(column)
        assert col is not None
        value = sql.SQL("{}::text").format(sql.Identifier("r", column))
        self.cur.execute(sql.SQL(
            "INSERT INTO {new} SELECT {keys} FROM {root} r WHERE {value} = ANY(%s) "
            ).format(
            new=self._temp("new", root.qualified), keys=self._keys(root.qualified, "r"),
            root=root.ident, value=value), (list(project_ids),))
        found = {str(v) for (v,) in self.cur.execute(sql.SQL(
            "SELECT DISTINCT {value} FROM {root} r WHERE {value} = ANY(%s)").format(
            value=value, root=root.ident), (list(project_ids),))}
        missing = [p for p in project_ids if p not in found]
        if missing:
            raise PreconditionError(
                f"no project {', '.join(repr(m) for m in missing)} in {root.qualified}."
                f"{column}; check the ids (SELECT {column} FROM {root.qualified})")
        self.cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
            self._temp("all", root.qualified), self._temp("new", root.qualified)))
        self._found_by[root.qualified].add("seed")

    def walk(self, root: str) -> None:
        """Down from the seeded root rows, then up from everything selected."""
        active = {root}
        while active:
            active = self._round([(fk, DOWN) for t in sorted(active)
                                  for fk in self.graph.children_of(t)])
        active = set()
        for name in self.graph.tables:
            self.cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                self._temp("new", name), self._temp("all", name)))
            if self.cur.rowcount:
                active.add(name)
        first = True
        while active:
            active = self._round([(fk, UP) for t in sorted(active)
                                  for fk in self.graph.parents_of(t)
                                  if not (first and self._found_by[t] == {fk.name})])
            first = False

    def _round(self, moves: list[tuple[ForeignKey, str]]) -> set[str]:
        touched: set[str] = set()
        for fk, way in moves:
            dst = fk.child if way == DOWN else fk.parent
            query = self._down(fk) if way == DOWN else self._up(fk)
            self.cur.execute(sql.SQL("INSERT INTO {} ").format(self._temp("cand", dst)) + query)
            touched.add(dst)
            if way == DOWN and self.cur.rowcount:
                self._found_by[dst].add(fk.name)
        sources = {fk.child if way == UP else fk.parent for fk, way in moves}
        found: set[str] = set()
        for name in sorted(touched | sources):
            if self._advance(name, name in touched):
                found.add(name)
        return found

    def _advance(self, name: str, touched: bool) -> bool:
        """``new`` := ``cand`` minus ``all``; ``all`` += ``new``; True if anything was new."""
        new, cand, all_ = (self._temp(k, name) for k in ("new", "cand", "all"))
        self.cur.execute(sql.SQL("TRUNCATE {}").format(new))
        if not touched:
            return False
        self.cur.execute(sql.SQL("INSERT INTO {new} SELECT * FROM {cand} EXCEPT "
                                 "SELECT * FROM {all}").format(new=new, cand=cand, all=all_))
        count = self.cur.rowcount
        self.cur.execute(sql.SQL("TRUNCATE {}").format(cand))
        if count:
            self.cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(all_, new))
            self.cur.execute(sql.SQL("ANALYZE {}, {}").format(all_, new))
        return count > 0

    def _match(self, table: str, alias: str, temp: str) -> sql.Composed:
        """``alias``'s row key equals temp table row ``d``'s."""
        names = [n for n, _ in self.key_columns(self.graph.tables[table])]
        return sql.SQL(" AND ").join(
            sql.SQL("{}.{} = d.{}").format(sql.Identifier(alias), sql.Identifier(n),
                                          sql.Identifier(f"k{i}"))
            for i, n in enumerate(names))

    def _pairs(self, fk: ForeignKey, child: str, parent: str) -> sql.Composed:
        return sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}.{}").format(sql.Identifier(child), sql.Identifier(c),
                                           sql.Identifier(parent), sql.Identifier(p))
            for c, p in zip(fk.child_columns, fk.parent_columns, strict=True))

    def _down(self, fk: ForeignKey) -> sql.Composed:
        """Row keys of ``fk.child`` rows that reference a ``new`` row of ``fk.parent``."""
        child, parent = self.graph.tables[fk.child], self.graph.tables[fk.parent]
        return sql.SQL(
            "SELECT {ckeys} FROM {child} c JOIN {parent} p ON {pairs} "
            "JOIN {new} d ON {match}").format(
            ckeys=self._keys(fk.child, "c"), child=child.ident, parent=parent.ident,
            pairs=self._pairs(fk, "c", "p"), new=self._temp("new", fk.parent),
            match=self._match(fk.parent, "p", "d"))

    def _up(self, fk: ForeignKey) -> sql.Composed:
        """Row keys of ``fk.parent`` rows that a ``new`` row of ``fk.child`` references."""
        child, parent = self.graph.tables[fk.child], self.graph.tables[fk.parent]
        refs = sql.SQL(", ").join(sql.Identifier("c", c) for c in fk.child_columns)
        return sql.SQL(
            "SELECT {pkeys} FROM {parent} p JOIN (SELECT DISTINCT {refs} FROM {child} c "
            "JOIN {new} d ON {match}) c ON {pairs}").format(
            pkeys=self._keys(fk.parent, "p"), parent=parent.ident, refs=refs,
            child=child.ident, new=self._temp("new", fk.child),
            match=self._match(fk.child, "c", "d"), pairs=self._pairs(fk, "c", "p"))

    def rows_of(self, table: str, columns: sql.Composable) -> sql.Composed:
        """``SELECT columns FROM table t`` restricted to the selected rows."""
        keys = self._keys(table, "t")
        return sql.SQL("SELECT {cols} FROM {table} t WHERE ({keys}) IN "
                       "(SELECT {temp_cols} FROM {all})").format(
            cols=columns, table=self.graph.tables[table].ident, keys=keys,
            temp_cols=self._temp_columns(table), all=self._temp("all", table))

    def counts(self) -> dict[str, int]:
        """Selected rows per table."""
        out: dict[str, int] = {}
        with self.cur.connection.cursor(row_factory=tuple_row) as cur:
            for name in self.graph.tables:
                row = cur.execute(sql.SQL("SELECT count(*) FROM {}").format(
                    self._temp("all", name))).fetchone()
                out[name] = int(row[0]) if row else 0
        return out
