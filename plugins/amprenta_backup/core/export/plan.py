"""Before an import writes: the load order, the foreign keys loaded late, and whether the
target's tables can take the export's rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from amprenta_backup.core.errors import PreconditionError
from amprenta_backup.core.export.graph import ForeignKey, SchemaGraph, Table

POLICIES = ("fail", "skip", "remap")
_CASTABLE = """
SELECT %(a)s::regtype = %(b)s::regtype OR EXISTS (
    SELECT 1 FROM pg_cast WHERE castsource = %(a)s::regtype AND casttarget = %(b)s::regtype
    AND castcontext IN ('a', 'i'))
"""


@dataclass
class LoadOrder:
    """Tables parents first; ``late`` are the foreign keys that point forward (cycles,
    self-references): their columns are loaded NULL and set once every row is in."""

    tables: list[str]
    late: list[ForeignKey] = field(default_factory=list)

    def late_of(self, table: str) -> list[ForeignKey]:
        return [fk for fk in self.late if fk.child == table]


def load_order(graph: SchemaGraph) -> LoadOrder:
    """Parents before children; inside a cycle, tables with fewer parents in it first."""
    import networkx as nx  # about 1 s to import: only when an import is planned

    g = nx.DiGraph()
    g.add_nodes_from(graph.tables)
    g.add_edges_from((fk.parent, fk.child) for fk in graph.foreign_keys
                     if fk.parent != fk.child)
    condensed = nx.condensation(g)
    order: list[str] = []
    for component in nx.topological_sort(condensed):
        members = sorted(condensed.nodes[component]["members"])
        members.sort(key=lambda t: sum(1 for fk in graph.parents_of(t)
                                       if fk.parent in members and fk.parent != t))
        order.extend(members)
    position = {t: i for i, t in enumerate(order)}
    late = [fk for fk in graph.foreign_keys if position[fk.parent] >= position[fk.child]]
    return LoadOrder(order, late)


def missing_tables(graph: SchemaGraph, target: SchemaGraph) -> list[str]:
    return [name for name in graph.tables if name not in target.tables]


def check_compatible(db: psycopg.Connection[Any], graph: SchemaGraph, target: SchemaGraph,
                     order: LoadOrder) -> None:
    """PreconditionError listing every way the target cannot take the rows: missing tables
    or columns, types without a cast, required columns the export lacks, late foreign key
    columns that are NOT NULL."""
    problems = [f"table {t} is missing" for t in missing_tables(graph, target)]
    for name, table in graph.tables.items():
        if name in target.tables:
            problems += _table_problems(db, table, target.tables[name])
    for fk in order.late:
        ours = target.tables.get(fk.child)
        for column in fk.child_columns if ours else ():
            col = ours.column(column) if ours else None
            if col is not None and col.not_null:
                problems.append(f"{fk.child}.{column} is NOT NULL but {fk.describe()} is part "
                                "of a cycle: it is loaded after the rows, so it must allow NULL")
    if problems:
        raise PreconditionError(
            f"the target database {db.info.dbname} cannot take this export: "
            + "; ".join(problems[:20]) + ("" if len(problems) <= 20 else
                                          f" (and {len(problems) - 20} more)")
            + "; import into an empty database, or bring the schema up to the export's "
            "(ddl/schema.sql in the export)")


def _table_problems(db: psycopg.Connection[Any], ours: Table, theirs: Table) -> list[str]:
    problems = []
    names = set(ours.column_names)
    for column in ours.columns:
        target = theirs.column(column.name)
        if target is None:
            problems.append(f"column {ours.qualified}.{column.name} is missing")
        elif not _castable(db, column.type, target.type):
            problems.append(f"{ours.qualified}.{column.name} is {target.type} in the target "
                            f"and {column.type} in the export")
    for column in theirs.columns:
        if column.name not in names and column.not_null and not column.has_default:
            problems.append(f"{theirs.qualified}.{column.name} is NOT NULL without a default "
                            "and not in the export")
    return problems


def _castable(db: psycopg.Connection[Any], source: str, target: str) -> bool:
    if source == target:
        return True
    try:
        with db.cursor(row_factory=tuple_row) as cur:
            cur.execute("SAVEPOINT amprenta_cast")
            row = cur.execute(_CASTABLE, {"a": source, "b": target}).fetchone()
            cur.execute("RELEASE SAVEPOINT amprenta_cast")
            return bool(row and row[0])
    except psycopg.errors.UndefinedObject:
        db.execute("ROLLBACK TO SAVEPOINT amprenta_cast")
        return False
