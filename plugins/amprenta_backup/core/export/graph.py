"""The foreign-key graph of a database, read from ``pg_catalog``.

Tables are ordinary and partitioned tables (partitions are read through their parent);
foreign keys are those declared on them (the clones PostgreSQL makes on partitions are left
out). Generated columns are not exported (they are computed again on load).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

_TABLES = """
SELECT c.oid, n.nspname, c.relname, c.relkind = 'p'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
ORDER BY n.nspname, c.relname
"""
_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       a.atthasdef OR a.attidentity <> ''
FROM pg_attribute a
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attrelid, a.attnum
"""
_KEYS = """
SELECT con.conrelid, array_agg(a.attname ORDER BY k.ord)
FROM pg_constraint con
CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.contype = 'p' AND con.conrelid = ANY(%s)
GROUP BY con.oid, con.conrelid
"""
_FOREIGN_KEYS = """
SELECT con.conname, con.conrelid, con.confrelid, con.condeferrable,
       con.convalidated AND NOT EXISTS (
           SELECT 1 FROM pg_trigger t WHERE t.tgconstraint = con.oid AND t.tgenabled = 'D'),
       array_agg(ca.attname ORDER BY k.ord), array_agg(pa.attname ORDER BY k.ord)
FROM pg_constraint con
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(child, parent, ord)
JOIN pg_attribute ca ON ca.attrelid = con.conrelid AND ca.attnum = k.child
JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = k.parent
WHERE con.contype = 'f' AND con.conparentid = 0 AND con.conrelid = ANY(%s)
  AND con.confrelid = ANY(%s)
GROUP BY con.oid, con.conname, con.conrelid, con.confrelid, con.condeferrable,
         con.convalidated
ORDER BY con.conname
"""


@dataclass(frozen=True)
class Column:
    """One column: name, SQL type, NOT NULL, whether it has a default (or is an identity)."""

    name: str
    type: str
    not_null: bool = False
    has_default: bool = False


@dataclass(frozen=True)
class Table:
    """An ordinary or partitioned table.

    :param key: its primary key columns; empty when it has none
    """

    schema: str
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    partitioned: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class ForeignKey:
    """``child(child_columns) REFERENCES parent(parent_columns)``, tables by qualified name.

    :param validated: the constraint is validated and its triggers are enabled: every row
        whose columns are all set has its parent row
    """

    name: str
    child: str
    child_columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    deferrable: bool = False
    validated: bool = False

    def describe(self) -> str:
        return (f"{self.child}({', '.join(self.child_columns)}) -> "
                f"{self.parent}({', '.join(self.parent_columns)})")


@dataclass
class SchemaGraph:
    """Tables by qualified name and the foreign keys between them."""

    tables: dict[str, Table] = field(default_factory=dict)
    foreign_keys: list[ForeignKey] = field(default_factory=list)

    def children_of(self, table: str) -> list[ForeignKey]:
        return [fk for fk in self.foreign_keys if fk.parent == table]

    def parents_of(self, table: str) -> list[ForeignKey]:
        return [fk for fk in self.foreign_keys if fk.child == table]

    def involved(self, root: str) -> SchemaGraph:
        """The part a project export reads: ``root``, every table that depends on it
        (children, transitively), and every table those reference (transitively)."""
        down = _closure({root}, lambda t: [fk.child for fk in self.children_of(t)])
        tables = _closure(down, lambda t: [fk.parent for fk in self.parents_of(t)])
        return SchemaGraph({k: v for k, v in self.tables.items() if k in tables},
                           [fk for fk in self.foreign_keys if fk.child in tables])

    def to_dict(self) -> dict[str, Any]:
        return {"tables": [asdict(t) for t in self.tables.values()],
                "foreign_keys": [asdict(fk) for fk in self.foreign_keys]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SchemaGraph:
        tables = [Table(schema=t["schema"], name=t["name"],
                        columns=tuple(Column(**c) for c in t["columns"]),
                        key=tuple(t["key"]), partitioned=bool(t["partitioned"]))
                  for t in data["tables"]]
        fks = [ForeignKey(name=f["name"], child=f["child"],
                          child_columns=tuple(f["child_columns"]), parent=f["parent"],
                          parent_columns=tuple(f["parent_columns"]),
                          deferrable=bool(f["deferrable"]),
                          validated=bool(f.get("validated", False)))
               for f in data["foreign_keys"]]
        return cls({t.qualified: t for t in tables}, fks)


def _closure(start: set[str], step: Any) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        for nxt in step(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def read_graph(db: psycopg.Connection[Any]) -> SchemaGraph:
    """Every user table of ``db`` with its columns and primary key, and the foreign keys."""
    with db.cursor(row_factory=tuple_row) as cur:
        names = {oid: (schema, name, parted) for oid, schema, name, parted
                 in cur.execute(_TABLES).fetchall()}
        oids = list(names)
        columns: dict[int, list[Column]] = {oid: [] for oid in oids}
        for oid, name, type_, not_null, has_default in cur.execute(_COLUMNS, (oids,)):
            columns[oid].append(Column(name, type_, bool(not_null), bool(has_default)))
        keys = {oid: tuple(cols) for oid, cols in cur.execute(_KEYS, (oids,))}
        fk_rows = cur.execute(_FOREIGN_KEYS, (oids, oids)).fetchall()
    tables = {oid: Table(schema, name, tuple(columns[oid]), keys.get(oid, ()), bool(parted))
              for oid, (schema, name, parted) in names.items()}
    fks = [ForeignKey(name, tables[child].qualified, tuple(ccols), tables[parent].qualified,
                      tuple(pcols), bool(deferrable), bool(validated))
           for name, child, parent, deferrable, validated, ccols, pcols in fk_rows]
    return SchemaGraph({t.qualified: t for t in tables.values()}, fks)
