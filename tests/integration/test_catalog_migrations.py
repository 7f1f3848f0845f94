"""The catalog schema is versioned: a catalog made by the code before versioning is upgraded in
place with every record intact, a fresh one gets the same schema, and once a process has
brought the catalog up to date no call takes the DDL lock again."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from amprenta_backup.core import catalog as catalog_module
from amprenta_backup.core import verify
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.catalog.migrations import CURRENT, SCHEMA_LOCK, STEPS, VERSION_TABLE
from amprenta_backup.core.drill import record as drill_record
from amprenta_backup.core.models import Status
from amprenta_backup.core.notifications import list_admin_notifications
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pitr.drill import DrillLog
from amprenta_backup.core.recovery.report import last_rto
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.integration.conftest import conninfo

FROZEN = Path(__file__).parent / "data" / "catalog_before_migrations.sql"
TABLES = ("backup_records", "health_checks", "admin_notifications", "backup_verifications",
          "drill_runs", "pitr_drills", "recovery_runs")
KEPT, DELETED = "20261101T010000Z-aaaa0001", "20261102T010000Z-aaaa0002"

OLD_ROWS = f"""
INSERT INTO backup_records (id, target, status, location, file_size_bytes, raw_size_bytes,
    sha256, started_at, completed_at, dag_id, run_id)
VALUES ('{KEPT}', 'pg_main', 'verified', 'file:///b/pg_main/2026/11/01/{KEPT}', 1234, 5678,
        '{"ab" * 32}', '2026-11-01T01:00Z', '2026-11-01T01:02Z', 'daily_backup', 'r1');
INSERT INTO backup_records (id, target, status, location, started_at, deleted_at, deleted_by,
    delete_reason)
VALUES ('{DELETED}', 'pg_main', 'deleted', 'file:///b/pg_main/2026/11/02/{DELETED}',
        '2026-11-02T01:00Z', '2026-11-30T04:00Z', 'weekly_cleanup', 'older than 365 days');
INSERT INTO backup_verifications (backup_id, target, ok, checked, seconds, dag_id)
VALUES ('{KEPT}', 'pg_main', true, '["sha256", "pg_restore --list"]', 1.5, 'weekly_verify');
INSERT INTO drill_runs (id, target, backup_id, strategy, window_end, drill_conn_id,
    scratch_database, started_at, rto_seconds, rto_objective_seconds, passed, checks)
VALUES ('drill-1', 'pg_main', '{KEPT}', 'latest', '2026-11-28T00:00Z', 'pg_main',
        'amprenta_drill_1', '2026-11-28T03:00Z', 12.5, 14400, true,
        '[{{"name": "row_counts", "status": "ok", "detail": "7 tables"}}]');
INSERT INTO pitr_drills (id, target, status, backup_id, rto_seconds)
VALUES ('pitr-1', 'pg_main.pitr', 'passed', '{KEPT}', 8.25);
INSERT INTO recovery_runs (id, kind, server, started_at, rto_seconds, passed, databases)
VALUES ('rec-1', 'dr_drill', 'db2:5432', '2026-11-29T02:00Z', 42.0, true, '[{{"db": "app"}}]');
INSERT INTO health_checks (as_of, target, name, status, detail)
VALUES ('2026-11-30T06:00Z', 'pg_main', 'latest_backup_age', 'ok', 'newest backup 5 h old');
INSERT INTO admin_notifications (title, message, notification_type)
VALUES ('backup failed', 'pg_main: connection refused', 'critical');
"""


@pytest.fixture
def new_db(pg_cluster: ClusterBase, fresh_db: Callable[[str], str]) -> Callable[[], PgConnInfo]:
    return lambda: conninfo(pg_cluster, fresh_db("migrate"))


def execute(conn: PgConnInfo, statements: str) -> None:
    with psycopg.connect(**conn.connect_kwargs()) as db:
        db.execute(statements.encode())


# added by steps after the frozen schema: null in old rows
LATER_COLUMNS = ["heartbeat_at", "value"]


def rows(conn: PgConnInfo) -> dict[str, list[str]]:
    """Every row of every catalog table, as JSON text, in a stable order (without the
    columns later steps add)."""
    with psycopg.connect(**conn.connect_kwargs()) as db:
        return {table: [r[0] for r in db.execute(sql.SQL(
            "SELECT (to_jsonb(t) - %s::text[])::text FROM {} t ORDER BY 1").format(
                sql.Identifier(table)), [LATER_COLUMNS])]
            for table in TABLES}


def schema(conn: PgConnInfo) -> set[tuple[object, ...]]:
    """Columns (name, type, null, default) and indexes of the catalog tables."""
    with psycopg.connect(**conn.connect_kwargs()) as db:
        columns = db.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public'").fetchall()
        indexes = db.execute("SELECT tablename, indexdef FROM pg_indexes "
                             "WHERE schemaname = 'public'").fetchall()
    return {tuple(c) for c in columns} | {tuple(i) for i in indexes}


def versions(conn: PgConnInfo) -> list[int]:
    with psycopg.connect(**conn.connect_kwargs()) as db:
        return [r[0] for r in db.execute(f"SELECT version FROM {VERSION_TABLE} ORDER BY 1")]


def test_a_catalog_made_before_versioning_is_upgraded_in_place_with_every_record(
        new_db: Callable[[], PgConnInfo]) -> None:
    conn = new_db()
    execute(conn, FROZEN.read_text(encoding="utf-8") + OLD_ROWS)
    before = rows(conn)
    assert all(before[table] for table in TABLES)

    catalog = Catalog(conn)
    assert catalog.ensure() == CURRENT

    assert versions(conn) == [step.version for step in STEPS]
    assert rows(conn) == before  # every row of every table, unchanged
    kept = catalog.get(KEPT)
    assert kept is not None and kept.status == Status.VERIFIED and kept.stored_bytes == 1234
    assert catalog.find(statuses=[Status.DELETED])[0].backup_id == DELETED
    assert verify.history(catalog, KEPT)[0]["checked"] == ["sha256", "pg_restore --list"]
    drill = drill_record.load(catalog, "drill-1")
    assert drill is not None and drill.passed and drill.checks[0].name == "row_counts"
    pitr = DrillLog(catalog).get("pitr-1")
    assert pitr is not None and pitr["status"] == "passed"
    last = last_rto(catalog)
    assert last is not None and last["id"] == "rec-1" and last["databases"] == 1
    assert list_admin_notifications(catalog)[0]["title"] == "backup failed"


def test_a_fresh_catalog_gets_the_same_schema_as_an_upgraded_one(
        new_db: Callable[[], PgConnInfo]) -> None:
    old, fresh = new_db(), new_db()
    execute(old, FROZEN.read_text(encoding="utf-8"))
    Catalog(old).ensure()
    Catalog(fresh).ensure()
    assert schema(fresh) == schema(old)
    assert versions(fresh) == versions(old) == [step.version for step in STEPS]


def test_concurrent_first_uses_migrate_once(new_db: Callable[[], PgConnInfo]) -> None:
    conn = new_db()
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            catalog_module.forget_ready()  # as if each were a new process
            Catalog(conn).find(limit=1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and versions(conn) == [step.version for step in STEPS]


def test_once_ready_no_call_waits_for_the_ddl_lock(new_db: Callable[[], PgConnInfo]) -> None:
    conn = new_db()
    catalog = Catalog(conn)
    catalog.ensure()
    done = threading.Event()

    def side_tables() -> None:  # each of these took the DDL lock on every call before
        verify.history(catalog, KEPT)
        drill_record.history(catalog)
        DrillLog(catalog).get("pitr-1")
        last_rto(catalog)
        list_admin_notifications(catalog)
        Catalog(conn).find(limit=1)  # another Catalog object of the same database
        done.set()

    with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))  # a migration running
        worker = threading.Thread(target=side_tables, daemon=True)
        worker.start()
        finished = done.wait(30)
        holder.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
    worker.join(30)
    assert finished, "a catalog call waited for the schema lock after the schema was ready"
