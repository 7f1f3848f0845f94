"""Exact per-table row counts, in batches that each release their locks.

``count(*)`` takes an ACCESS SHARE lock on the table and its indexes until the transaction
ends. Counting 10,000 tables in one transaction needs more lock slots than a default server
has (``max_locks_per_transaction`` = 64 per connection), on top of the locks pg_dump itself
holds; so each batch of tables is counted in its own short transaction. A backup imports
the dump's exported snapshot into every batch (``SET TRANSACTION SNAPSHOT``), so the counts
are those of the data the dump holds. A parallel restore counts over several connections at
once (:func:`count_rows_at_once`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
from psycopg import sql

from amprenta_backup.core.pgtools import PgConnInfo, terminate_session

USER_TABLES = """
SELECT format('%I.%I', n.nspname, c.relname), n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1
"""

SIZED_TABLES = f"""
SELECT u.qualified, u.nspname, u.relname,
       pg_relation_size(format('%I.%I', u.nspname, u.relname)::regclass)
FROM ({USER_TABLES}) AS u (qualified, nspname, relname)
ORDER BY 4 DESC, 1
"""

# Tables counted per transaction: with their indexes, a few hundred locks at most, released
# at each commit (a default server has 64 x max_connections lock slots in all).
COUNT_BATCH = 50

Db = psycopg.Connection[tuple[object, ...]]


def count_rows(db: Db, snapshot: str | None = None, batch: int = COUNT_BATCH) -> dict[str, int]:
    """Exact row count of every user table (and partition), keyed ``schema.table``.

    ``db`` must not be inside a transaction: each batch is its own transaction, committed
    before the next starts, so its locks are released. With ``snapshot`` (from
    ``pg_export_snapshot()``, whose transaction must stay open meanwhile), the list of tables
    and every count see that snapshot.

    :param db: an idle connection (autocommit or not)
    :param snapshot: an exported snapshot to count in, or None for the current data
    :param batch: tables per transaction
    """
    with _transaction(db, snapshot):
        tables = [(str(q), str(s), str(t)) for q, s, t in db.execute(USER_TABLES).fetchall()]
    return _count_tables(db, tables, snapshot, batch)


def count_rows_at_once(conn: PgConnInfo, connections: int, batch: int = COUNT_BATCH,
                       skip: frozenset[str] = frozenset()) -> dict[str, int]:
    """:func:`count_rows` of the current data over ``connections`` connections at once (a
    parallel restore's ``jobs``): the tables dealt largest first (``pg_relation_size``) to the
    connection with the fewest bytes so far, each counting its share in batches.

    :param conn: the database to count in
    :param connections: connections at most (1: one, as :func:`count_rows`)
    :param batch: tables per transaction
    :param skip: tables (``schema.table`` as counted) not to count: counted already
    """
    with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
        with _transaction(db, None):
            listed = [row for row in db.execute(SIZED_TABLES).fetchall()
                      if str(row[0]) not in skip]
        shares: list[list[tuple[str, str, str]]] = [[] for _ in range(max(1, connections))]
        load = [0] * len(shares)
        for qualified, schema, table, size in listed:
            share = load.index(min(load))
            shares[share].append((str(qualified), str(schema), str(table)))
            load[share] += int(str(size))
        shares = [share for share in shares if share] or [[]]
        with ThreadPoolExecutor(len(shares) - 1 or 1) as pool:
            others = [pool.submit(_count_apart, conn, share, batch) for share in shares[1:]]
            counts = _count_tables(db, shares[0], None, batch)
            for other in others:
                counts.update(other.result())
    return counts


def count_listed(conn: PgConnInfo, tables: list[tuple[str, str]],
                 batch: int = COUNT_BATCH) -> dict[str, int]:
    """Exact row counts of the ``(schema, table)`` pairs that are user tables in ``conn``'s
    database (others are left out), keyed as :func:`count_rows` keys them: how a parallel
    restore counts a loader's tables as soon as that loader has finished.

    :param conn: the database to count in
    :param tables: the tables to count
    :param batch: tables per transaction
    """
    wanted = set(tables)
    with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
        with _transaction(db, None):
            found = [(str(q), str(s), str(t)) for q, s, t in db.execute(USER_TABLES).fetchall()
                     if (s, t) in wanted]
        return _count_tables(db, found, None, batch)


def _count_apart(conn: PgConnInfo, tables: list[tuple[str, str, str]],
                 batch: int) -> dict[str, int]:
    with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
        return _count_tables(db, tables, None, batch)


def _count_tables(db: Db, tables: list[tuple[str, str, str]], snapshot: str | None,
                  batch: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for start in range(0, len(tables), batch):
        chunk = tables[start:start + batch]
        with _transaction(db, snapshot):
            row = db.execute(_batch_query(chunk)).fetchone() or ()
        counts.update((qualified, int(str(n))) for (qualified, _, _), n in zip(chunk, row,
                                                                              strict=True))
    return counts


class RowCounter(threading.Thread):
    """Counts rows inside an exported snapshot on a connection of its own, while pg_dump
    streams; ``counts`` or ``error`` are set once it has finished.

    :param conn: the database to count in
    :param snapshot: the dump's exported snapshot
    """

    def __init__(self, conn: PgConnInfo, snapshot: str) -> None:
        super().__init__(daemon=True, name="row-counter")
        self._conn = conn
        self._snapshot = snapshot
        self.counts: dict[str, int] = {}
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._pid: int | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(**self._conn.connect_kwargs(), autocommit=True) as db:
                with self._lock:
                    if self._stopped:
                        raise RuntimeError("the row count was stopped")
                    self._pid = db.info.backend_pid
                self.counts = count_rows(db, self._snapshot)
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def stop(self) -> None:
        """End the count at once (its ``count(*)`` may wait on a table lock): its session is
        terminated; a counter not connected yet never counts."""
        with self._lock:
            self._stopped, pid = True, self._pid
        if pid is not None and self.is_alive():
            terminate_session(self._conn, pid)


def _batch_query(chunk: list[tuple[str, str, str]]) -> sql.Composed:
    """One row with one count per table, in ``chunk``'s order."""
    counts = [sql.SQL("(SELECT count(*) FROM {}.{})").format(sql.Identifier(schema),
                                                             sql.Identifier(table))
              for _, schema, table in chunk]
    return sql.SQL("SELECT {}").format(sql.SQL(", ").join(counts))


@contextmanager
def _transaction(db: Db, snapshot: str | None) -> Iterator[None]:
    """One committed read-only transaction; in ``snapshot`` (REPEATABLE READ) if given."""
    with db.transaction():
        if snapshot is None:
            db.execute("SET TRANSACTION READ ONLY")
        else:
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            db.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        yield
