"""Restore drills of real backups on the real server: verdicts, evidence, and scratch safety."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.drill import record as drill_record
from amprenta_backup.core.drill import scratch as drill_scratch
from amprenta_backup.core.drill.assertions import parse_assertions
from amprenta_backup.core.drill.record import DrillRecord
from amprenta_backup.core.drill.report import report_keys
from amprenta_backup.core.drill.runner import DrillRunner, drill_id_for, pick_backup
from amprenta_backup.core.errors import PreconditionError
from amprenta_backup.core.health import Level
from amprenta_backup.core.models import Manifest, RunContext, Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupTarget, DrillSettings
from amprenta_backup.core.storage import Storage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.dataset import load_sample
from tests.integration.cli.test_backups import cli  # noqa: F401  (the CLI-in-a-subprocess fixture)
from tests.integration.conftest import conninfo
from tests.support.backups import engine_for, flip_byte, make_backup, rewrite
from tests.support.stored_backups import stored_backup

SOURCE = BackupTarget("pg_source")
BUILT_IN = ["checksum", "restore", "row_counts", "foreign_keys", "check_constraints",
            "sequences"]
SENTINEL = "CREATE TABLE sentinel (note text); INSERT INTO sentinel VALUES ('still here')"
CUSTOMERS_EXIST = {"name": "customers_exist", "sql": "SELECT count(*) FROM app.customers",
                   "expect": "> 0"}
_runs = iter(range(1, 10_000))
# the sample schema (sandbox/sample_schema.sql): CHECKs on 2 tables and 2 domains (app.email,
# billing.amount) used by 4 columns; 3 sequences feed 5 columns (a partitioned table's id
# default is its partitions' too), app.ticket_seq feeds none
SAMPLE_CHECKS = "4 CHECK constraints hold: 2 of tables, 2 of domains (on 4 columns)"
SAMPLE_SEQUENCES = "3 sequences ahead of the 5 columns they fill"


def _runner(storage: Storage, catalog: Catalog, conns: dict[str, PgConnInfo],
            assertions: list[dict[str, Any]] | None = None, **settings: Any) -> DrillRunner:
    resolve = engine_for(storage, catalog, conns).resolve
    return DrillRunner(storage, catalog, resolve,
                       DrillSettings(assertions=parse_assertions(assertions or [], "test"),
                                     **settings))


def _run() -> RunContext:
    return RunContext(dag_id="monthly_restore_drill", run_id=f"test_{next(_runs)}",
                      logical_date=datetime.now(UTC))


def _by_name(record: DrillRecord) -> dict[str, Any]:
    return {check.name: check for check in record.checks}


def _folder(manifest: Manifest) -> str:
    return manifest.key.rsplit("/", 1)[0]


@pytest.fixture
def source_runner(local_storage: Storage, catalog: Catalog,
                  source_conn: PgConnInfo) -> Callable[..., DrillRunner]:
    """``(assertions=None, **DrillSettings fields) -> DrillRunner`` drilling ``pg_source``."""
    def make(assertions: list[dict[str, Any]] | None = None, **settings: Any) -> DrillRunner:
        return _runner(local_storage, catalog, {"pg_source": source_conn}, assertions,
                       **settings)
    return make


@pytest.fixture
def backup(local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo) -> Manifest:
    return make_backup(local_storage, catalog, source_conn)


@pytest.fixture(scope="module")
def pristine_conn(pg_cluster: ClusterBase) -> PgConnInfo:
    """A sample database of this module's own: the session's ``amprenta`` gains tables from
    other tests (CHECKs and sequences of theirs), and the drill's words are asserted exactly."""
    load_sample(pg_cluster, "amprenta_drill_words")
    return conninfo(pg_cluster, "amprenta_drill_words")


def test_a_good_backup_passes_every_check_and_leaves_the_evidence(
    local_storage: Storage, catalog: Catalog, pristine_conn: PgConnInfo, pg_cluster: ClusterBase,
) -> None:
    backup = make_backup(local_storage, catalog, pristine_conn)
    runner = _runner(local_storage, catalog, {"pg_source": pristine_conn}, [
        CUSTOMERS_EXIST,
        {"name": "orders_fresh", "sql": "SELECT max(ordered_at) FROM app.orders",
         "expect": {"max_age_hours": 24 * 365 * 10}}])

    record = runner.run(SOURCE, _run())

    assert record.passed is True, record.summary
    assert list(_by_name(record)) == [*BUILT_IN, "assertion:customers_exist",
                                      "assertion:orders_fresh", "rto"]
    assert all(check.status == Level.OK for check in record.checks), record.checks
    assert "tables" in _by_name(record)["row_counts"].detail
    assert record.scratch_database.startswith("amprenta_drill_")
    assert not pg_cluster.database_exists(record.scratch_database)

    row = pg_cluster.query(
        "SELECT backup_id, target, scratch_database, passed, rto_seconds, restore_seconds, "
        "checks_seconds, rto_objective_seconds, scratch_created, scratch_dropped_at IS NOT NULL,"
        " finished_at >= started_at, dag_id, run_id, jsonb_array_length(checks), "
        "checks -> -1 ->> 'name' FROM drill_runs WHERE id = %s",
        dbname=catalog.conn.dbname, params=[record.drill_id])[0]
    (backup_id, target, scratch, passed, rto, restore_s, checks_s, objective, created, dropped,
     ordered, dag_id, run_id, count, last) = row
    assert (backup_id, target, scratch, passed) == (backup.backup_id, "pg_source",
                                                    record.scratch_database, True)
    assert rto > 0 and rto == pytest.approx(restore_s + checks_s, abs=0.01)
    assert objective == 14400 and created and dropped and ordered
    assert (dag_id, run_id, count, last) == ("monthly_restore_drill", record.run_id, 9, "rto")

    json_key, md_key = report_keys(_folder(backup), record.drill_id)
    report = json.loads(local_storage.get_bytes(json_key))
    assert report["passed"] is True and report["backup_id"] == backup.backup_id
    assert [c["name"] for c in report["checks"]] == list(_by_name(record))
    markdown = local_storage.get_bytes(md_key).decode()
    assert markdown.startswith(f"# Restore drill {record.drill_id}: PASSED")
    assert "| PASS | assertion:customers_exist |" in markdown and "within the objective" in markdown
    assert record.report_uri == local_storage.uri(md_key)

    # the words of the checks: domains counted with tables, sequences counted once each
    assert _by_name(record)["check_constraints"].detail == SAMPLE_CHECKS
    assert _by_name(record)["sequences"].detail == SAMPLE_SEQUENCES
    # the drill read the whole backup and checked it: the backup is VERIFIED
    assert catalog.get(backup.backup_id).status == Status.VERIFIED
    (verification,) = pg_cluster.query(
        "SELECT ok, checked::text, dag_id, run_id FROM backup_verifications WHERE backup_id = %s",
        dbname=catalog.conn.dbname, params=[backup.backup_id])
    assert verification == (True, f'["sha256", "size", "archive", "restore drill '
                                  f'{record.drill_id}"]', "monthly_restore_drill", record.run_id)


def test_failing_assertions_fail_the_drill_and_say_which_and_why(
    local_storage: Storage, catalog: Catalog, backup: Manifest,
    pg_cluster: ClusterBase, source_runner: Callable[..., DrillRunner],
) -> None:
    runner = source_runner([
        CUSTOMERS_EXIST,
        {"name": "exactly_five", "sql": "SELECT count(*) FROM app.customers", "expect": "== 5"},
        {"name": "tries_to_write", "sql": "DELETE FROM app.events", "expect": "is null"},
        {"name": "two_statements", "sql": "SELECT 1; DELETE FROM app.events",
         "expect": "== 1"},
        {"name": "too_slow", "sql": "SELECT pg_sleep(3)", "expect": "is null"},
        {"name": "orders_within_2_days", "sql": "SELECT max(ordered_at) FROM app.orders",
         "expect": {"max_age_hours": 48}},
        {"name": "other_target_only", "sql": "SELECT 1/0", "expect": "== 1",
         "targets": ["pg_other"]}], statement_timeout=0.5)

    record = runner.run(SOURCE, _run())

    checks = _by_name(record)
    assert record.passed is False
    assert {c.name for c in record.failures} == {
        "assertion:exactly_five", "assertion:tries_to_write", "assertion:two_statements",
        "assertion:too_slow", "assertion:orders_within_2_days"}
    assert "assertion:other_target_only" not in checks
    assert checks["assertion:customers_exist"].status == Level.OK
    assert "got 200, expected == 5" in checks["assertion:exactly_five"].detail
    assert "read-only transaction" in checks["assertion:tries_to_write"].detail
    assert "multiple commands" in checks["assertion:two_statements"].detail
    assert "statement timeout" in checks["assertion:too_slow"].detail
    assert "h older than the backup" in checks["assertion:orders_within_2_days"].detail
    assert "assertion:exactly_five: SELECT count(*) FROM app.customers: got 200" \
        in record.summary
    assert not pg_cluster.database_exists(record.scratch_database)
    markdown = local_storage.get_bytes(report_keys(_folder(backup), record.drill_id)[1]).decode()
    assert "FAILED" in markdown.splitlines()[0]
    assert "| FAIL | assertion:exactly_five |" in markdown


def test_a_corrupt_backup_fails_at_the_checksum_and_nothing_is_restored(
    local_storage: Storage, catalog: Catalog, backup: Manifest,
    pg_cluster: ClusterBase, source_runner: Callable[..., DrillRunner],
) -> None:
    rewrite(local_storage, backup.key, flip_byte)
    runner = source_runner()

    record = runner.run(SOURCE, _run())

    assert record.passed is False
    assert [c.name for c in record.checks] == ["checksum"]
    assert "sha256 of the stored bytes is" in record.checks[0].detail
    assert "nothing was restored" in record.checks[0].detail
    assert record.scratch_created is False and record.restore_seconds is None
    assert not pg_cluster.database_exists(record.scratch_database)
    corrupt = catalog.get(backup.backup_id)
    assert corrupt.status == Status.CORRUPT and record.drill_id in (corrupt.error or "")
    report = json.loads(local_storage.get_bytes(report_keys(_folder(backup),
                                                            record.drill_id)[0]))
    assert report["passed"] is False and report["checks"][0]["status"] == "critical"


FLAWED = """
CREATE TABLE parent (id integer PRIMARY KEY);
CREATE TABLE child (id serial PRIMARY KEY, parent_id integer, amount integer,
                    a integer, b integer);
CREATE TABLE pair (a integer, b integer, PRIMARY KEY (a, b));
INSERT INTO parent VALUES (1), (2);
INSERT INTO pair VALUES (1, 1);
INSERT INTO child (parent_id, amount, a, b) VALUES (1, 5, 1, 1), (2, 7, NULL, NULL),
    (3, -1, 1, NULL), (NULL, 2, 9, 9);
ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent
    NOT VALID;
ALTER TABLE child ADD CONSTRAINT child_pair_fk FOREIGN KEY (a, b) REFERENCES pair
    MATCH FULL NOT VALID;
ALTER TABLE child ADD CONSTRAINT child_amount_positive CHECK (amount > 0) NOT VALID;
SELECT setval('child_id_seq', 2);
CREATE DOMAIN score AS integer;
CREATE DOMAIN small_score AS score CHECK (VALUE < 100);
CREATE TABLE rating (id integer, value small_score, "Note" text);
INSERT INTO rating VALUES (1, 5, 'VALUE'), (2, -3, NULL), (3, NULL, NULL);
ALTER DOMAIN score ADD CONSTRAINT score_not_negative CHECK (VALUE >= 0) NOT VALID;
"""


def test_broken_keys_checks_and_a_lagging_sequence_in_the_backup_are_found(
    local_storage: Storage, catalog: Catalog, pg_cluster: ClusterBase,
    fresh_db: Callable[[str], str],
) -> None:
    """The source marks its flawed constraints NOT VALID, so pg_restore accepts the data and
    only a check that reads the data can tell."""
    name = fresh_db("flawed")
    pg_cluster.execute(FLAWED, dbname=name)
    conn = conninfo(pg_cluster, name)
    make_backup(local_storage, catalog, conn, target="pg_flawed")
    runner = _runner(local_storage, catalog, {"pg_flawed": conn})

    record = runner.run(BackupTarget("pg_flawed"), _run())

    checks = _by_name(record)
    assert {c.name for c in record.failures} == {"foreign_keys", "check_constraints",
                                                 "sequences"}
    assert checks["row_counts"].status == Level.OK
    keys = checks["foreign_keys"].detail
    assert "child_parent_fk: 1 rows of public.child (parent_id) reference no row of " \
           "public.parent (id)" in keys
    assert "child_pair_fk: 2 rows of public.child (a, b)" in keys  # (1, NULL) and (9, 9)
    constraints = checks["check_constraints"].detail
    assert "child_amount_positive on public.child: 1 rows violate CHECK" in constraints
    # a domain's CHECK, through a domain over it: the -3 (the NULL passes, as in a CHECK)
    assert "score_not_negative of domain public.score on column value on public.rating: " \
           "1 rows violate CHECK" in constraints
    assert "small_score" not in constraints
    assert "public.child_id_seq (owned by public.child.id) would hand out 3 next, the column " \
           "already holds 4" in checks["sequences"].detail
    assert not pg_cluster.database_exists(record.scratch_database)


def test_a_restore_slower_than_the_objective_fails_the_drill(
    catalog: Catalog, backup: Manifest, source_runner: Callable[..., DrillRunner],
) -> None:
    runner = source_runner(rto_seconds=0.01)

    record = runner.run(SOURCE, _run())

    assert record.passed is False and [c.name for c in record.failures] == ["rto"]
    assert "against an objective of 0.01 s" in record.failures[0].detail
    stored = drill_record.load(catalog, record.drill_id)
    assert stored is not None and stored.passed is False and stored.rto_objective_seconds == 0.01


def test_a_database_already_under_the_scratch_name_is_never_dropped(
    catalog: Catalog, backup: Manifest,
    pg_cluster: ClusterBase, source_runner: Callable[..., DrillRunner],
) -> None:
    runner = source_runner()
    run = _run()
    name = drill_scratch.scratch_name(drill_id_for(run, "pg_source"))
    pg_cluster.create_database(name)
    try:
        pg_cluster.execute(SENTINEL, dbname=name)

        record = runner.run(SOURCE, run)
        runner.teardown(record.drill_id)

        assert record.passed is False and [c.name for c in record.checks] == ["setup"]
        assert "was not created by restore drill" in record.checks[0].detail
        assert record.scratch_dropped_at is None
        assert pg_cluster.query("SELECT note FROM sentinel", dbname=name) == [("still here",)]
    finally:
        pg_cluster.drop_database(name)


def test_a_database_made_between_setup_and_restore_is_refused_and_kept(
    catalog: Catalog, backup: Manifest,
    pg_cluster: ClusterBase, source_runner: Callable[..., DrillRunner],
) -> None:
    runner = source_runner()
    record = runner.prepare(SOURCE, _run())
    pg_cluster.create_database(record.scratch_database)
    try:
        pg_cluster.execute(SENTINEL, dbname=record.scratch_database)

        with pytest.raises(PreconditionError, match="left untouched"):
            runner.restore(record.drill_id)
        closed = runner.teardown(record.drill_id)

        assert closed is not None and closed.passed is False
        assert pg_cluster.query("SELECT note FROM sentinel",
                                dbname=record.scratch_database) == [("still here",)]
    finally:
        pg_cluster.drop_database(record.scratch_database)


def test_a_leftover_of_an_earlier_try_of_the_same_drill_is_dropped_and_restored_again(
    catalog: Catalog, source_conn: PgConnInfo, backup: Manifest,
    pg_cluster: ClusterBase, source_runner: Callable[..., DrillRunner],
) -> None:
    runner = source_runner()
    record = runner.prepare(SOURCE, _run())
    pg_cluster.create_database(record.scratch_database)  # a try that died mid-restore
    assert drill_scratch.mark(source_conn, record.scratch_database, record.drill_id)

    runner.restore(record.drill_id)
    checked = runner.check(record.drill_id)
    runner.teardown(record.drill_id)

    assert checked.passed is True, checked.summary
    assert not pg_cluster.database_exists(record.scratch_database)


def test_the_backup_is_picked_from_the_right_window(catalog: Catalog,
                                                    local_storage: Storage) -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    made = {}
    for label, days, status in (("sep22", 70, Status.COMPLETED), ("oct17", 45, Status.VERIFIED),
                                ("nov11", 20, Status.COMPLETED), ("nov21", 10, Status.FAILED),
                                ("nov26", 5, Status.CORRUPT), ("dec02", -1, Status.COMPLETED)):
        made[label] = stored_backup(local_storage, catalog, "pg_source",
                                    now - timedelta(days=days), status).backup_id

    latest = pick_backup(catalog, "pg_source", now=now)
    backfill = pick_backup(catalog, "pg_source", interval_start=now - timedelta(days=61),
                           interval_end=now - timedelta(days=30))
    randoms = {pick_backup(catalog, "pg_source", "random", 50, interval_end=now,
                           rng=random.Random(seed)).record.backup_id for seed in range(40)}

    assert latest.record.backup_id == made["nov11"] and latest.window_start is None
    assert backfill.record.backup_id == made["oct17"]  # the latest of October
    assert randoms == {made["oct17"], made["nov11"]}
    with pytest.raises(PreconditionError, match="no completed backup started between "
                                                "2026-09-02 03:00 and 2026-09-12 03:00"):
        pick_backup(catalog, "pg_source", interval_start=now - timedelta(days=90),
                    interval_end=now - timedelta(days=80))


def test_the_cli_runs_a_drill_and_lists_it(
    cli: Callable[..., subprocess.CompletedProcess[str]],  # noqa: F811  (the fixture)
    source_conn: PgConnInfo,
) -> None:
    assert cli("backup", "pg_source").returncode == 0

    done = cli("drill", "run", "pg_source")
    nothing = cli("drill", "run", "pg_source:never_backed_up")
    listed = cli("drill", "history", "--json")

    assert done.returncode == 0, done.stderr
    assert "PASSED" in done.stdout and "report: file://" in done.stdout
    assert nothing.returncode == 1
    assert "setup: target pg_source.never_backed_up has no completed backup" in nothing.stdout
    sentence = "target pg_source.never_backed_up has no completed backup"
    assert nothing.stdout.count(sentence) == 1 and nothing.stderr.count(sentence) <= 1
    assert [(r["target"], r["passed"]) for r in json.loads(listed.stdout)] == [
        ("pg_source.never_backed_up", False), ("pg_source", True)]
    (first,) = [r["backup_id"] for r in json.loads(listed.stdout) if r["passed"]]
    assert cli("backup", "pg_source").returncode == 0
    chosen = cli("drill", "run", "--backup", first, "--json")
    assert chosen.returncode == 0, chosen.stderr
    ((backup_id, strategy),) = [(r["backup_id"], r["strategy"])
                                for r in json.loads(chosen.stdout)]
    assert (backup_id, strategy) == (first, "given")
    assert (source_conn.password or "\0") not in done.stdout + done.stderr + listed.stdout
