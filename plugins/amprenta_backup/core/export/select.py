"""Which rows belong to the chosen projects, computed in SQL inside the export's snapshot.

Each involved table gets temporary tables of row keys (its primary key, or ``tableoid, ctid``
when it has none; ``ctid`` is stable inside one snapshot): ``all`` (selected so far) and two
``new`` tables used in turn (found in the last round, found in this one). The walk is
semi-naive: each round follows the foreign keys out of the rows found in the round before, so
self-references and cycles end when a round finds nothing new.

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
_ANALYZE_AFTER = 1000  # rows found in a round
# the export session's key sets and joins in memory (temp_buffers: before any temp table)
SESSION = ("SET temp_buffers = '256MB'", "SET work_mem = '128MB'")


class Selection:
    """The selected rows of every table of ``graph``, held in temporary tables.

    :param cur: a cursor of the export's REPEATABLE READ transaction
    :param graph: the involved tables (:meth:`SchemaGraph.involved`)
    """

    def __init__(self, cur: psycopg.Cursor[Any], graph: SchemaGraph) -> None:
        self.cur = cur
        self.graph = graph
        self._index = {name: i for i, name in enumerate(graph.tables)}
        self._followed: dict[str, set[ForeignKey | None]] = {name: set() for name in graph.tables}
        self._sizes = dict.fromkeys(graph.tables, 0)
        self._parity = 0
        self._new_is_all = dict.fromkeys(graph.tables, False)
        self._down_sizes: dict[str, int] = {}
        self._growing: set[str] = set()

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
        for setting in SESSION:
            self.cur.execute(setting)
        for name, table in self.graph.tables.items():
            cols = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(f"k{i}"), sql.SQL(type_))
                for i, (_, type_) in enumerate(self.key_columns(table)))
            for kind in ("all", "new0", "new1"):
                self.cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} ({})").format(
                    self._temp(kind, name), cols))

    def seed(self, root: Table, column: str, project_ids: Sequence[str]) -> None:
        """Select the root rows whose ``column`` is one of ``project_ids``; PreconditionError
        naming the ids that match no row."""
        col = root.column(column)
        assert col is not None
        value = sql.SQL("{}::text").format(sql.Identifier("r", column))
        self.cur.execute(sql.SQL(
            "INSERT INTO {all} SELECT {keys} FROM {root} r WHERE {value} = ANY(%s)").format(
            all=self._temp("all", root.qualified), keys=self._keys(root.qualified, "r"),
            root=root.ident, value=value), (list(project_ids),))
        inserted = self.cur.rowcount
        found = {str(v) for (v,) in self.cur.execute(sql.SQL(
            "SELECT DISTINCT {value} FROM {root} r WHERE {value} = ANY(%s)").format(
            value=value, root=root.ident), (list(project_ids),))}
        missing = [p for p in project_ids if p not in found]
        if missing:
            raise PreconditionError(
                f"no project {', '.join(repr(m) for m in missing)} in {root.qualified}."
                f"{column}; check the ids (SELECT {column} FROM {root.qualified})")
        self._sizes[root.qualified] = inserted
        self._new_is_all[root.qualified] = True
        self._followed[root.qualified].add(None)  # seeded

    def walk(self, root: str) -> None:
        """Down from the seeded root rows, then up from everything selected."""
        active = {root}
        while active:
            active = self._round([(fk, DOWN) for t in sorted(active)
                                  for fk in self.graph.children_of(t)])
        self._down_sizes = dict(self._sizes)
        active = {t for t, n in self._sizes.items() if n}
        first = True
        while active:  # the first round reads every table's ``all``: all of it is new there
            active = self._round([(fk, UP) for t in sorted(active)
                                  for fk in self.graph.parents_of(t)
                                  if not (first and self._followed[t] == {fk})],
                                 source="all" if first else None)
            first = False

    def _round(self, moves: list[tuple[ForeignKey, str]], source: str | None = None
               ) -> set[str]:
        """Follow ``moves`` out of the rows found last round (or ``source``); the rows found
        go to the other ``new`` table of each destination (two per table, used in turn)."""
        src = source or f"new{self._parity}"
        dst_kind = f"new{1 - self._parity}"
        queries: dict[str, list[sql.Composable]] = {}
        self._growing = {fk.child if way == DOWN else fk.parent for fk, way in moves}
        for fk, way in moves:
            dst = fk.child if way == DOWN else fk.parent
            queries.setdefault(dst, []).append(
                self._down(fk, src) if way == DOWN else self._up(fk, src, source == "all"))
            if way == DOWN:
                self._followed[dst].add(fk)
        found = {dst for dst, parts in sorted(queries.items())
                 if self._advance(dst, dst_kind, parts)}
        self._parity = 1 - self._parity
        return found

    def _advance(self, name: str, kind: str, queries: list[sql.Composable]) -> bool:
        """``new`` := the rows of ``queries`` not in ``all`` yet; ``all`` += ``new``.

        The first rows found of a table go straight into ``all`` (one query yields no
        duplicates: a foreign key matches one row of its unique key; several are a UNION),
        and ``all`` is read as its ``new`` next round: one write per row, not two."""
        new, all_ = self._temp(kind, name), self._temp("all", name)
        union = sql.SQL(" UNION ").join(sql.SQL("({})").format(q) for q in queries)
        if not self._sizes[name]:
            self.cur.execute(sql.SQL("INSERT INTO {} {}").format(all_, union))
            count = self._sizes[name] = self.cur.rowcount
            self._new_is_all[name] = True
            analyze: tuple[sql.Identifier, ...] = (all_,)
        else:
            self.cur.execute(sql.SQL("TRUNCATE {}").format(new))
            self.cur.execute(sql.SQL("INSERT INTO {new} {union} EXCEPT SELECT * FROM {all}"
                                     ).format(new=new, union=union, all=all_))
            count = self.cur.rowcount
            self._new_is_all[name] = False
            if count:
                self.cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(all_, new))
                self._sizes[name] += count
            analyze = (all_, new)
        if count > _ANALYZE_AFTER:  # the planner's estimates of the next joins
            self.cur.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(analyze)))
        return count > 0

    def _source(self, table: str, kind: str) -> sql.Identifier:
        """The rows of ``table`` found last round: ``all`` when those were its first."""
        return self._temp("all" if self._new_is_all[table] else kind, table)

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

    def _by_key(self, fk: ForeignKey) -> list[tuple[str, int]] | None:
        """``(child column, index in the parent's row key)`` when ``fk`` references exactly
        the parent's primary key (most do): the key sets then join without the parent."""
        key = list(self.graph.tables[fk.parent].key)
        if sorted(fk.parent_columns) != sorted(key):
            return None
        return [(c, key.index(p)) for c, p in zip(fk.child_columns, fk.parent_columns,
                                                  strict=True)]

    def _down(self, fk: ForeignKey, source: str) -> sql.Composed:
        """Row keys of ``fk.child`` rows that reference a ``new`` row of ``fk.parent``."""
        child, parent = self.graph.tables[fk.child], self.graph.tables[fk.parent]
        new, ckeys = self._source(fk.parent, source), self._keys(fk.child, "c")
        direct = self._by_key(fk)
        if direct is not None:
            on = sql.SQL(" AND ").join(sql.SQL("c.{} = d.{}").format(
                sql.Identifier(c), sql.Identifier(f"k{i}")) for c, i in direct)
            return sql.SQL("SELECT {} FROM {} c JOIN {} d ON {}").format(
                ckeys, child.ident, new, on)
        return sql.SQL(
            "SELECT {ckeys} FROM {child} c JOIN {parent} p ON {pairs} "
            "JOIN {new} d ON {match}").format(
            ckeys=ckeys, child=child.ident, parent=parent.ident,
            pairs=self._pairs(fk, "c", "p"), new=new, match=self._match(fk.parent, "p", "d"))

    def _selected(self, table: str, source: str, everything: bool) -> sql.Composed:
        """``JOIN ... ON ...``: ``c``'s rows among those selected. Reading everything of a
        table whose rows all came down one foreign key to a primary key, that key's (smaller)
        set of parents stands for them: no join with the table's own key set."""
        came = self._followed[table]
        via = next(iter(came)) if everything and len(came) == 1 else None
        if via is not None and (via.parent in self._growing
                                or self._sizes[via.parent] != self._down_sizes[via.parent]):
            via = None  # the parents gained rows on the way up: they stand for no more
        direct = self._by_key(via) if via is not None else None
        if via is not None and direct is not None:
            return sql.SQL("JOIN {} d ON {}").format(
                self._temp("all", via.parent), sql.SQL(" AND ").join(
                    sql.SQL("c.{} = d.{}").format(sql.Identifier(c), sql.Identifier(f"k{i}"))
                    for c, i in direct))
        return sql.SQL("JOIN {} d ON {}").format(self._source(table, source),
                                                 self._match(table, "c", "d"))

    def _up(self, fk: ForeignKey, source: str, everything: bool = False) -> sql.Composed:
        """Row keys of ``fk.parent`` rows that a ``new`` row of ``fk.child`` references."""
        child, parent = self.graph.tables[fk.child], self.graph.tables[fk.parent]
        refs = sql.SQL(", ").join(sql.Identifier("c", c) for c in fk.child_columns)
        referenced = sql.SQL("SELECT DISTINCT {refs} FROM {child} c {selected}").format(
            refs=refs, child=child.ident,
            selected=self._selected(fk.child, source, everything))
        direct = self._by_key(fk)
        if direct is not None:  # the values are the parent's key (the constraint holds)
            order = sorted(direct, key=lambda pair: pair[1])
            return sql.SQL("SELECT {} FROM ({}) c WHERE {}").format(
                sql.SQL(", ").join(sql.Identifier("c", col) for col, _ in order), referenced,
                sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(col))
                                      for col, _ in order))
        return sql.SQL("SELECT {pkeys} FROM {parent} p JOIN ({referenced}) c ON {pairs}"
                       ).format(pkeys=self._keys(fk.parent, "p"), parent=parent.ident,
                                referenced=referenced, pairs=self._pairs(fk, "c", "p"))

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
