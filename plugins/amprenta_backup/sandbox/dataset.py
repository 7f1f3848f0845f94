"""Deterministic sample databases for demos, tests (load_sample) and benchmarks (load_bulk)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from typing import Any

from psycopg import sql

from amprenta_backup.sandbox.cluster import ClusterBase

log = logging.getLogger(__name__)

MIB = 1024 * 1024

# Every ordinary table the sample creates (partitions included, partitioned parent not).
SAMPLE_TABLES: tuple[tuple[str, str], ...] = (
    ("app", "customers"),
    ("app", "orders"),
    ("app", "documents"),
    ("app", "events"),
    ("billing", "invoices_2025"),
    ("billing", "invoices_2026"),
    ("données", "café"),
)

_CUSTOMERS = """
INSERT INTO app.customers (email, full_name, tags, profile, created_at, updated_at)
SELECT 'User' || g || '@Example.COM',
       (ARRAY['Zoë Ångström', '山田 太郎', 'O''Brien, "Pat"', 'Émile 🚀'])[1 + g % 4] || ' ' || g,
       CASE WHEN g % 7 = 0 THEN ARRAY['tier-' || g % 3, NULL, 'with, comma "quoted"']
            ELSE ARRAY['tier-' || g % 3, CASE WHEN g % 5 = 0 THEN 'vip' ELSE 'regular' END] END,
       jsonb_build_object('lang', (ARRAY['fr', 'en', 'de', 'ja'])[1 + g % 4],
                          'newsletter', g % 2 = 0,
                          'score', round((g * 1.37) % 100, 2),
                          'nested', jsonb_build_object('k', md5(g::text), 'n', NULL),
                          'list', jsonb_build_array(g, g * 2, 'ünï', NULL)),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 minutes 0.000123 seconds',
       CASE WHEN g % 3 = 0 THEN timestamptz '2025-06-01 12:00:00+00' + g * interval '1 hour' END
FROM generate_series(1, {customers}) AS g
"""

_ORDERS = """
INSERT INTO app.orders (customer_id, status, quantities, total, ordered_at, note)
SELECT 1 + (g * 7919) % {customers},
       (enum_range(NULL::app.order_status))[1 + g % 5],
       ARRAY[1 + g % 5, 1 + g % 3, 1 + g % 11],
       round((g % 997) * 3.17 + 0.99, 2),
       timestamptz '2025-01-01 00:00:00+00' + g * interval '53 minutes',
       CASE g % 10 WHEN 0 THEN NULL
                   WHEN 1 THEN E'line1\\nline2\\ttab \\\\ backslash ''quote'''
                   ELSE 'note ' || md5(g::text) END
FROM generate_series(1, {rows}) AS g
"""

_INVOICES = """
INSERT INTO billing.invoices (order_id, issued_on, amount, currency)
SELECT g, CASE WHEN g % 2 = 0 THEN date '2026-01-01' ELSE date '2025-01-01' END + (g * 37) % 365,
       round((g % 997) * 3.17 + 0.99, 2),
       (ARRAY['EUR', 'USD', 'CHF'])[1 + g % 3]
FROM generate_series(1, {rows}) AS g
WHERE g % 5 <> 0
"""

_DOCUMENTS = """
INSERT INTO app.documents (id, title, body, payload)
SELECT d, 'Document ' || d || ' — résumé',
       (SELECT string_agg(md5((d * 100000 + i)::text), ' ' ORDER BY i)
          FROM generate_series(1, 3200 + d * 10) AS i),
       CASE d WHEN 1 THEN (SELECT decode(string_agg(lpad(to_hex(b), 2, '0'), '' ORDER BY b), 'hex')
                             FROM generate_series(0, 255) AS b)
              WHEN 2 THEN '\\x'::bytea
              WHEN 3 THEN (SELECT decode(string_agg(md5(i::text), '' ORDER BY i), 'hex')
                             FROM generate_series(1, 65536) AS i)
              ELSE decode(repeat('00ff7f80', d * 100), 'hex') END
FROM generate_series(1, 12) AS d
"""

_EVENTS = """
INSERT INTO app.events (occurred_at, kind, detail, ratio)
SELECT CASE WHEN g = 1 THEN '-infinity'::timestamptz
            ELSE timestamptz '2025-01-01 00:00:00+00' + g * interval '17 seconds' END,
       (ARRAY['login', 'logout', 'payment', 'refund', 'error'])[1 + g % 5],
       CASE WHEN g % 9 = 0 THEN NULL
            ELSE jsonb_build_object('g', g, 'msg', 'événement ' || g, 'path', ARRAY['a', 'b'],
                                    'ok', g % 2 = 0, 'big', 12345678901234567890.5) END,
       CASE g % 50 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN 'Infinity' WHEN 2 THEN '-Infinity'
                   ELSE g / 7.0 END
FROM generate_series(1, {rows}) AS g
"""

_CAFE = """
INSERT INTO "données"."café" ("numéro", "libellé", "prix_€", "taux", "servi_à")
SELECT g,
       (ARRAY['Café crème', 'Thé vert 緑茶', 'Chocolat chaud', 'Crêpe'])[1 + g % 4] || ' n°' || g,
       round(1.5 + g * 0.35, 2),
       CASE WHEN g = 7 THEN 'NaN'::numeric ELSE g::numeric / 7 END,
       timestamptz '2025-03-14 15:09:26.535897+01' + g * interval '1 day 1.000001 seconds'
FROM generate_series(1, 50) AS g
"""

_FINISH = """
SELECT setval('app.ticket_seq', 4242, true);
SELECT setval('billing.invoice_no_seq', (SELECT max(invoice_no) FROM billing.invoices) + 700);
ANALYZE;
"""


def sample_schema_sql() -> str:
    """The DDL of the sample database (sample_schema.sql shipped beside this module)."""
    return resources.files(__package__).joinpath("sample_schema.sql").read_text("utf-8")


def _ensure_database(cluster: ClusterBase, dbname: str) -> None:
    if not cluster.database_exists(dbname):
        cluster.create_database(dbname)


def load_sample(cluster: ClusterBase, dbname: str, rows: int = 2000) -> dict[str, int]:
    """Create ``dbname`` if needed and (re)load the sample schema and deterministic data.

    :param cluster: a started sandbox cluster.
    :param dbname: target database; the sample's own schemas in it are dropped first.
    :param rows: rows in the main tables (orders, events; 80 % of it in invoices); >= 10.
    :return: row count per table, keyed ``schema.table``.
    """
    if rows < 10:
        raise ValueError(f"rows must be at least 10 (got {rows})")
    _ensure_database(cluster, dbname)
    params = {"rows": int(rows), "customers": max(int(rows) // 10, 20)}
    with cluster.connect(dbname, autocommit=False) as conn:
        conn.execute(sample_schema_sql())
        for stmt in (_CUSTOMERS, _ORDERS, _INVOICES, _DOCUMENTS, _EVENTS, _CAFE):
            conn.execute(stmt.format(**params))
        conn.commit()
        conn.autocommit = True
        conn.execute(_FINISH)
        counts: dict[str, int] = {}
        for schema, table in SAMPLE_TABLES:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            row = conn.execute(query).fetchone()
            counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    log.info("sample data loaded into %s: %s", dbname, counts)
    return counts


_BULK_DDL = """
CREATE SCHEMA IF NOT EXISTS bulk;
CREATE TABLE IF NOT EXISTS bulk.readings (
    id          bigint PRIMARY KEY,
    device_id   integer NOT NULL,
    sensor      text NOT NULL,
    label       text NOT NULL,
    payload     jsonb NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    reading     double precision,
    recorded_at timestamptz NOT NULL
);
"""

_BULK_INSERT = """
INSERT INTO bulk.readings
SELECT g, (g * 7919) % 100003, 'sensor-' || g % 97, md5(g::text) || md5((-g)::text),
       jsonb_build_object('seq', g, 'fw', 'v1.' || g % 20, 'ok', g % 3 = 0,
                          'hash', md5((g * 7)::text), 'ref', substr(md5((g * 13)::text), 1, 12),
                          'site', (ARRAY['paris', 'lyon', 'nantes', 'lille'])[1 + g % 4],
                          'tags', jsonb_build_array('t' || g % 13, 't' || g % 7)),
       round(((g * 7919) % 1000000) / 100.0, 2),
       sin(g) * 1000,
       timestamptz '2025-01-01 00:00:00+00' + g * interval '1.37 seconds'
FROM generate_series({first}::bigint, {last}::bigint) AS g
"""


def load_bulk(cluster: ClusterBase, dbname: str, megabytes: int,
              batch_rows: int = 200_000) -> int:
    """Grow table ``bulk.readings`` in ``dbname`` until pg_database_size reaches ``megabytes``.

    Rows mix md5 text, jsonb, numeric, floats and timestamps: zstd-3 compresses a
    ``pg_dump -Fc -Z0`` of it about 2-3x (pgbench data compresses about 100x: unrealistic).
    Re-running continues where the table ends, so the size only grows.

    :param cluster: a started sandbox cluster.
    :param dbname: target database, created if needed.
    :param megabytes: target pg_database_size in MiB.
    :param batch_rows: most rows per INSERT ... SELECT generate_series statement.
    :return: the final pg_database_size in bytes.
    """
    _ensure_database(cluster, dbname)
    target = int(megabytes) * MIB
    with cluster.connect(dbname) as conn:
        conn.execute(_BULK_DDL)

        def size_and_next() -> tuple[int, int]:
            row: Any = conn.execute(
                "SELECT pg_database_size(current_database()),"
                " coalesce(max(id), 0) + 1 FROM bulk.readings").fetchone()
            return int(row[0]), int(row[1])

        size, first = size_and_next()
        bytes_per_row = 200.0  # first guess, refined after each batch
        while size < target:
            wanted = int((target - size) / bytes_per_row)
            count = max(1_000, min(batch_rows, wanted, 20_000 if first == 1 else batch_rows))
            conn.execute(_BULK_INSERT.format(first=first, last=first + count - 1))
            new_size, first = size_and_next()
            if new_size > size:
                bytes_per_row = (new_size - size) / count
            size = new_size
        conn.execute("VACUUM (ANALYZE) bulk.readings")
        size, _ = size_and_next()
    log.info("bulk data in %s: %.1f MiB", dbname, size / MIB)
    return size


_ROW_BYTES = 330  # about what one bulk.readings row takes in its table (heap and TOAST)


def load_tables(cluster: ClusterBase, dbname: str, megabytes: Sequence[float]) -> list[str]:
    """Tables ``many.t01``, ``many.t02`` ... of about ``megabytes[i]`` MiB each, with the rows
    of ``bulk.readings`` (a database with many sizeable tables, for parallel dumps).

    :param cluster: a started sandbox cluster.
    :param dbname: target database, created if needed.
    :param megabytes: the size of each table, in MiB.
    :return: the tables' names, ``schema.table``.
    """
    _ensure_database(cluster, dbname)
    names = [f"many.t{i:02d}" for i in range(1, len(megabytes) + 1)]
    ddl = _BULK_DDL.replace("bulk.readings", "{table}").replace("bulk", "many")
    with cluster.connect(dbname) as conn:
        for name, size in zip(names, megabytes, strict=True):
            conn.execute(ddl.format(table=name))
            insert = _BULK_INSERT.replace("bulk.readings", name)
            conn.execute(insert.format(first=1, last=max(1, int(size * MIB / _ROW_BYTES))))
        conn.execute("ANALYZE")
    return names
