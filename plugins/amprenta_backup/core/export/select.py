"""Which rows belong to the chosen projects, computed in SQL inside the export's snapshot.

Pendant tables (:mod:`.filters`: most leaves and the subtrees below one parent) get no key
set: their rows are read with a condition on their parent's. Every other involved table gets
temporary tables of row keys (its primary key, or ``tableoid, ctid`` when it has none;
``ctid`` is stable inside one snapshot): ``all`` (found on the way down), ``up`` (found on
the way up) and two ``new`` tables used in turn. The walk is semi-naive: each round follows
the foreign keys out of the rows found in the round before, so self-references and cycles
end when a round finds nothing new.

1. down: the root rows, then every row that references a selected row (children,
   grandchildren, many-to-many link rows), repeatedly;
2. up: every row a selected row references (lookups, parents), repeatedly. Rows reached on
   the way up are not followed down again: that would pull in other projects. ``all`` stays
   as the way down left it, so a pendant table's condition reads its parent's rows found
   down, never those found up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from amprenta_backup.core.errors import PreconditionError
from amprenta_backup.core.export.filters import RowFilter, come_down, pendant_tables
from amprenta_backup.core.export.graph import ForeignKey, SchemaGraph, Table

log = logging.getLogger(__name__)

DOWN, UP = "down", "up"
_SYSTEM_KEY = (("tableoid", "oid"), ("ctid", "tid"))
_ANALYZE_AFTER = 1000  # rows found in a round
# the export session's key sets and joins in memory (temp_buffers: before any temp table)
SESSION = ("SET temp_buffers = '256MB'", "SET work_mem = '128MB'")


class Selection:
    """The selected rows of every table of ``graph``: key sets in temporary tables, and
    conditions for the pendant tables.

    :param cur: a cursor of the export's REPEATABLE READ transaction
    :param graph: the involved tables (:meth:`SchemaGraph.involved`)
    :param root: the project's root table (qualified name)
    """

    def __init__(self, cur: psycopg.Cursor[Any], graph: SchemaGraph, root: str) -> None:
        self.cur = cur
        self.graph = graph
        self.root = root
        self.pendant = pendant_tables(graph, root)
        self.keyed = [name for name in graph.tables if name not in self.pendant]
        self._index = {name: i for i, name in enumerate(graph.tables)}
        self._followed: dict[str, set[ForeignKey | None]] = {n: set() for n in self.keyed}
        self._sizes = {name: {"all": 0, "up": 0} for name in self.keyed}
        self._fresh: dict[str, str | None] = dict.fromkeys(self.keyed)
        self._parity = 0
        self._phase = DOWN
        self._made: set[tuple[str, str]] = set()

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
        """The session settings and each key set's ``all`` table; the others are made
        when first written (temporary: dropped with the session)."""
        for setting in SESSION:
            self.cur.execute(setting)
        for name in self.keyed:
            self._ensure("all", name)

    def _ensure(self, kind: str, name: str) -> bool:
        """Create the temporary table ``kind`` of ``name`` unless it exists; True if made."""
        if (kind, name) in self._made:
            return False
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(f"k{i}"), sql.SQL(type_))
            for i, (_, type_) in enumerate(self.key_columns(self.graph.tables[name])))
        self.cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} ({})").format(
            self._temp(kind, name), cols))
        self._made.add((kind, name))
        return True

    def seed(self, column: str, project_ids: Sequence[str]) -> None:
        """Select the root rows whose ``column`` is one of ``project_ids``; PreconditionError
        naming the ids that match no row."""
        root = self.graph.tables[self.root]
        value = sql.SQL("{}::text").format(sql.Identifier("r", column))
        self.cur.execute(sql.SQL(
            "INSERT INTO {all} SELECT {keys} FROM {root} r WHERE {value} = ANY(%s)").format(
            all=self._temp("all", self.root), keys=self._keys(self.root, "r"),
            root=root.ident, value=value), (list(project_ids),))
        inserted = self.cur.rowcount
        found = {str(v) for (v,) in self.cur.execute(sql.SQL(
            "SELECT DISTINCT {value} FROM {root} r WHERE {value} = ANY(%s)").format(
            value=value, root=root.ident), (list(project_ids),))}
        missing = [p for p in project_ids if p not in found]
        if missing:
            raise PreconditionError(
                f"no project {', '.join(repr(m) for m in missing)} in {self.root}."
                f"{column}; check the ids (SELECT {column} FROM {self.root})")
        self._sizes[self.root]["all"] = inserted
        self._fresh[self.root] = "all"
        self._followed[self.root].add(None)  # seeded

    def walk(self) -> None:
        """Down from the seeded root rows, then up from everything selected."""
        active = {self.root}
        while active:
            active = self._round([(fk, DOWN) for t in sorted(active)
                                  for fk in self.graph.children_of(t)
                                  if fk.child not in self.pendant])
        self._phase = UP
        active = {t for t in self.keyed if self._sizes[t]["all"]} | set(self.pendant)
        first = True
        while active:  # the first round reads everything found down: all of it is new there
            active = self._round([(fk, UP) for t in sorted(active)
                                  for fk in self.graph.parents_of(t) if self._climbs(t, fk, first)],
                                 source="all" if first else None)
            first = False

    def _climbs(self, table: str, fk: ForeignKey, first: bool) -> bool:
        """Whether going up ``fk`` from ``table``'s new rows can find rows not selected yet:
        not into a pendant table, nor back up the only foreign key they all came down."""
        if fk.parent in self.pendant or self.pendant.get(table) == fk:
            return False
        return not (first and self._followed.get(table) == {fk})

    def _round(self, moves: list[tuple[ForeignKey, str]], source: str | None = None
               ) -> set[str]:
        """Follow ``moves`` out of the rows found last round (or ``source``); the rows found
        go to the other ``new`` table of each destination (two per table, used in turn)."""
        src = source or f"new{self._parity}"
        dst_kind = f"new{1 - self._parity}"
        queries: dict[str, list[sql.Composable]] = {}
        for fk, way in moves:
            dst = fk.child if way == DOWN else fk.parent
            queries.setdefault(dst, []).append(
                self._down(fk, src) if way == DOWN else self._up(fk, src))
            if way == DOWN:
                self._followed[dst].add(fk)
        found = {dst for dst, parts in sorted(queries.items())
                 if self._advance(dst, dst_kind, parts)}
        self._parity = 1 - self._parity
        return found

    def _advance(self, name: str, kind: str, queries: list[sql.Composable]) -> bool:
        """``new`` := the rows of ``queries`` not selected yet; ``all`` (down) or ``up`` +=
        ``new``.

        A table's first rows go straight into ``all`` or ``up`` (one query yields no
        duplicates: a foreign key matches one row of its unique key; several are a UNION),
        which is read as its ``new`` next round: one write per row, not two."""
        target = "all" if self._phase == DOWN else "up"
        new, into = self._temp(kind, name), self._temp(target, name)
        union = sql.SQL(" UNION ").join(sql.SQL("({})").format(q) for q in queries)
        held = [self._temp(k, name) for k, n in self._sizes[name].items() if n]
        self._ensure(target, name)
        if not held:
            self.cur.execute(sql.SQL("INSERT INTO {} {}").format(into, union))
            count = self.cur.rowcount
            self._fresh[name] = target
            analyze: tuple[sql.Identifier, ...] = (into,)
        else:
            if not self._ensure(kind, name):
                self.cur.execute(sql.SQL("TRUNCATE {}").format(new))
            self.cur.execute(sql.SQL("INSERT INTO {} {} {}").format(new, union, sql.SQL(
                " ").join(sql.SQL("EXCEPT SELECT * FROM {}").format(h) for h in held)))
            count = self.cur.rowcount
            self._fresh[name] = None
            if count:
                self.cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(into, new))
            analyze = (into, new)
        self._sizes[name][target] += count
        if count > _ANALYZE_AFTER:  # the planner's estimates of the next joins
            self.cur.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(analyze)))
        return count > 0

    def _source(self, table: str, kind: str) -> sql.Identifier:
        """The rows of ``table`` found last round: ``all`` or ``up`` when those were its
        first."""
        return self._temp(self._fresh[table] or kind, table)

    def _match(self, table: str, alias: str) -> sql.Composed:
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
            pairs=self._pairs(fk, "c", "p"), new=new, match=self._match(fk.parent, "p"))

    def _new_rows(self, table: str, source: str) -> sql.Composed:
        """``JOIN ...`` or ``WHERE ...``: the rows of ``table`` (alias ``c``) found last
        round; all of a pendant table's (it is read in the first round up only)."""
        if table in self.pendant:
            return sql.SQL("WHERE {}").format(self.down_filter(table).where("c"))
        return sql.SQL("JOIN {} d ON {}").format(self._source(table, source),
                                                 self._match(table, "c"))

    def _up(self, fk: ForeignKey, source: str) -> sql.Composed:
        """Row keys of ``fk.parent`` rows that a ``new`` row of ``fk.child`` references: a
        semi-join the planner may run from either side (a few lookup rows probe an index
        of the child; many parents are hashed)."""
        child, parent = self.graph.tables[fk.child], self.graph.tables[fk.parent]
        return sql.SQL("SELECT {pkeys} FROM {parent} p WHERE ({pcols}) IN "
                       "(SELECT {ccols} FROM {child} c {selected})").format(
            pkeys=self._keys(fk.parent, "p"), parent=parent.ident,
            pcols=sql.SQL(", ").join(sql.Identifier("p", c) for c in fk.parent_columns),
            ccols=sql.SQL(", ").join(sql.Identifier("c", c) for c in fk.child_columns),
            child=child.ident, selected=self._new_rows(fk.child, source))

    def _key_set(self, name: str, kinds: Sequence[str]) -> RowFilter:
        names = tuple(n for n, _ in self.key_columns(self.graph.tables[name]))
        subquery = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {} FROM {}").format(self._temp_columns(name), self._temp(k, name))
            for k in kinds)
        return RowFilter(names, subquery, exact=True)

    def down_filter(self, name: str) -> RowFilter:
        """The condition selecting the rows of ``name`` found on the way down."""
        fk = self.pendant.get(name)
        if fk is None:
            return self._key_set(name, ["all"])
        return come_down(fk, self.down_filter(fk.parent), self.graph.tables[fk.parent].ident)

    def row_filter(self, name: str) -> RowFilter:
        """The condition selecting every selected row of ``name``."""
        if name in self.pendant:
            return self.down_filter(name)
        return self._key_set(name, ["all", "up"] if self._sizes[name]["up"] else ["all"])

    def rows_of(self, table: str, columns: sql.Composable) -> sql.Composed:
        """``SELECT columns FROM table t`` restricted to the selected rows."""
        return sql.SQL("SELECT {cols} FROM {table} t WHERE {where}").format(
            cols=columns, table=self.graph.tables[table].ident,
            where=self.row_filter(table).where("t"))

    def count(self, name: str) -> int:
        """Selected rows of ``name`` (a pendant table's are counted in SQL)."""
        if name not in self.pendant:
            return sum(self._sizes[name].values())
        row = self.cur.execute(sql.SQL("SELECT count(*) FROM ({}) x").format(
            self.rows_of(name, sql.SQL("1")))).fetchone()
        return int(row[0]) if row else 0
