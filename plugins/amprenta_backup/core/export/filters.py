"""Which tables need no key set, and the SQL condition that selects their rows instead.

A *pendant* table is reached down exactly one foreign key from the tables above it, is in no
cycle and has only pendant tables below it (most leaf tables, and subtrees such as
``samples -> measurements -> annotations``). Its selected rows are exactly those whose
foreign key points at a selected row of its parent, so instead of materialising their keys
the export reads them with a condition on the parent's key set (``WHERE fk IN (SELECT ...)``),
pushed down the tree through validated foreign keys: ``annotations(sample_id, seq, taken_on)
-> measurements(sample_id, ...) -> samples`` becomes ``annotations.sample_id IN (the
samples' keys)``. Nothing is found on the way up into a pendant table (its children are
pendant and came down from it), and nothing below one needs its rows as a key set.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from amprenta_backup.core.export.graph import ForeignKey, SchemaGraph


@dataclass(frozen=True)
class RowFilter:
    """The rows of a table whose ``columns`` are ``IN (subquery)`` and whose ``not_null``
    columns are set.

    :param exact: the subquery yields values of rows that exist in the table (a key set),
        not values that a validated foreign key promises exist
    """

    columns: tuple[str, ...]
    subquery: sql.Composable
    not_null: tuple[str, ...] = ()
    exact: bool = False

    def where(self, alias: str) -> sql.Composed:
        """The condition on the table's rows under ``alias``."""
        cols = sql.SQL(", ").join(sql.Identifier(alias, c) for c in self.columns)
        parts: list[sql.Composable] = [
            sql.SQL("({}) IN ({})").format(cols, self.subquery),
            *(sql.SQL("{} IS NOT NULL").format(sql.Identifier(alias, c))
              for c in self.not_null)]
        return sql.SQL(" AND ").join(parts)


def pendant_tables(graph: SchemaGraph, root: str) -> dict[str, ForeignKey]:
    """The pendant tables of ``graph`` walked down from ``root``: each with the one foreign
    key its rows come down."""
    down = {root}
    todo = [root]
    while todo:
        for fk in graph.children_of(todo.pop()):
            if fk.child not in down:
                down.add(fk.child)
                todo.append(fk.child)
    found: dict[str, ForeignKey] = {}
    for name in down - {root}:
        incoming = [fk for fk in graph.parents_of(name) if fk.parent in down]
        if len(incoming) == 1 and incoming[0].parent != name:
            found[name] = incoming[0]
    changed = True
    while changed:  # keep those with only pendant tables below
        changed = False
        for name in sorted(found):
            if any(fk.child not in found for fk in graph.children_of(name)):
                del found[name]
                changed = True
    return found


def come_down(fk: ForeignKey, parent: RowFilter, table: sql.Identifier) -> RowFilter:
    """The rows of ``fk.child`` that reference a row of ``fk.parent`` (``table``) that
    ``parent`` selects.

    When ``parent`` is a condition on columns ``fk`` references (a key set of them, or,
    through a validated constraint, any condition on them), it applies to the child's own
    columns: no join with the parent table. Otherwise the child's columns are matched with
    the parent's selected rows."""
    mapping = dict(zip(fk.parent_columns, fk.child_columns, strict=True))
    used = set(parent.columns) | set(parent.not_null)
    if (parent.exact and set(parent.columns) == set(fk.parent_columns)) or (
            fk.validated and used <= set(mapping)):
        columns = tuple(mapping[c] for c in parent.columns)
        return RowFilter(columns, parent.subquery,
                         tuple(c for c in fk.child_columns if c not in columns))
    subquery = sql.SQL("SELECT {} FROM {} p WHERE {}").format(
        sql.SQL(", ").join(sql.Identifier("p", c) for c in fk.parent_columns),
        table, parent.where("p"))
    return RowFilter(fk.child_columns, subquery)
