"""Restores of real backups into a real server: exact round trips, and every refusal safe."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import (
    ChecksumMismatch,
    ConfigError,
    PreconditionError,
    RestoreError,
)
from amprenta_backup.core.identifiers import MAX_NAME_BYTES
from amprenta_backup.core.models import Manifest, Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.request import RestoreRequest
from amprenta_backup.core.restore.run import Restorer
from amprenta_backup.core.restore.server import TargetServer
from amprenta_backup.core.storage import Storage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal, table_checksums
from amprenta_backup.sandbox.dataset import load_sample
from tests.support.backups import engine_for, flip_byte, make_backup, rewrite

_names = itertools.count(1)
SENTINEL = "CREATE TABLE sentinel (note text); INSERT INTO sentinel VALUES ('still here')"


@pytest.fixture
def with_sentinel(pg_cluster: ClusterBase, new_name: Callable[[str], str]) -> str:
    """An existing database holding one row someone cares about."""
    name = new_name("occupied")
    pg_cluster.create_database(name)
    pg_cluster.execute(SENTINEL, dbname=name)
    return name


def _sentinel(cluster: ClusterBase, dbname: str) -> list[tuple[object, ...]]:
    return list(cluster.query("SELECT note FROM sentinel", dbname=dbname))


@pytest.fixture
def s3_backup(s3_storage: Storage, catalog: Catalog, source_conn: PgConnInfo) -> Manifest:
    return make_backup(s3_storage, catalog, source_conn)


@pytest.fixture
def s3_engine(s3_storage: Storage, catalog: Catalog, source_conn: PgConnInfo) -> BackupEngine:
    """An engine over the S3 bucket and catalog of ``s3_backup``; ``pg_source`` is defined."""
    return engine_for(s3_storage, catalog, {"pg_source": source_conn})


def test_round_trip_from_s3_equals_the_source_and_reports_rto_and_counts(
    s3_engine: BackupEngine, s3_backup: Manifest,
    pg_cluster: ClusterBase, new_name: Callable[[str], str],
) -> None:
    target = new_name("restored")
    backups = s3_engine.list_backups(limit=10)  # the spec's Python API, as written there

    result = s3_engine.restore_backup(backups[0].id, target_database=target)

    assert_databases_equal(pg_cluster, "amprenta", pg_cluster, target)
    assert result.plan.backup_id == s3_backup.backup_id
    assert result.performed and result.mismatches == []
    assert {t: got for t, (got, _) in result.row_counts.items()} == s3_backup.table_counts
    assert 0 < result.verify_seconds < result.seconds
    assert result.to_dict()["row_counts_match"] is True
    assert f"into database {target!r}" in result.message and "match the manifest" in result.message


def test_parallel_restore_from_a_temporary_file_equals_the_source_and_cleans_up(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo, pg_cluster: ClusterBase,
    new_name: Callable[[str], str], tmp_path: Path,
) -> None:
    manifest = make_backup(local_storage, catalog, source_conn)
    work = tmp_path / "work"
    work.mkdir()
    restorer = Restorer(local_storage, catalog, engine_for(local_storage, catalog, {
        "pg_source": source_conn}).resolve)
    target = new_name("parallel")

    result = restorer.run(RestoreRequest(manifest.backup_id, target, jobs=2), workdir=str(work))

    assert_databases_equal(pg_cluster, "amprenta", pg_cluster, target)
    assert result.mismatches == [] and list(work.iterdir()) == []


def test_latest_skips_a_corrupt_backup_and_a_dry_run_touches_nothing(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo, pg_cluster: ClusterBase,
    new_name: Callable[[str], str],
) -> None:
    older = make_backup(local_storage, catalog, source_conn)
    newer = make_backup(local_storage, catalog, source_conn)
    catalog.set_status(newer.backup_id, Status.CORRUPT, "verification failed: test")
    engine = engine_for(local_storage, catalog, {"pg_source": source_conn})
    target = new_name("dry")

    result = engine.restore_backup("latest", target, source_target="pg_source", dry_run=True)

    assert not result.performed and result.plan.backup_id == older.backup_id
    assert not pg_cluster.database_exists(target)
    plan = result.plan.to_dict()
    assert plan["database_exists"] is False and plan["raw_bytes"] == older.raw_bytes
    assert plan["table_counts"] == older.table_counts and len(plan["steps"]) == 6
    assert "dry run: nothing was touched" in result.message


def test_new_database_into_an_existing_database_is_refused_and_it_is_untouched(
    s3_engine: BackupEngine, s3_backup: Manifest,
    pg_cluster: ClusterBase, with_sentinel: str,
) -> None:

    with pytest.raises(PreconditionError, match="already exists .* left untouched"):
        s3_engine.restore_backup(s3_backup.backup_id, with_sentinel)

    assert _sentinel(pg_cluster, with_sentinel) == [("still here",)]


@pytest.mark.parametrize("confirm", [None, "", "someone_else"])
def test_replace_without_the_right_confirmation_is_refused(
    s3_engine: BackupEngine, s3_backup: Manifest,
    pg_cluster: ClusterBase, with_sentinel: str, confirm: str | None,
) -> None:

    with pytest.raises(PreconditionError, match=f"confirm='{with_sentinel}' to go ahead"):
        s3_engine.restore_backup(s3_backup.backup_id, with_sentinel, mode="replace",
                              confirm=confirm)

    assert _sentinel(pg_cluster, with_sentinel) == [("still here",)]


def _temporaries(cluster: ClusterBase, name: str) -> list[str]:
    """Databases a replace of ``name`` restores into before swapping them in."""
    stem = name.encode()[:MAX_NAME_BYTES - 22].decode("utf-8", "ignore")
    return [row[0] for row in cluster.query(
        "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
        params=[stem + "_amprenta_tmp_"])]


@pytest.mark.parametrize("jobs", [1, 2])
def test_replace_swaps_in_the_restored_database_and_leaves_no_temporary_one(
    s3_engine: BackupEngine, s3_backup: Manifest,
    pg_cluster: ClusterBase, with_sentinel: str, jobs: int,
) -> None:
    holder = pg_cluster.connect(with_sentinel)  # an application still connected to it

    result = s3_engine.restore_backup(s3_backup.backup_id, with_sentinel, mode="replace",
                                      confirm=with_sentinel, jobs=jobs)

    assert_databases_equal(pg_cluster, "amprenta", pg_cluster, with_sentinel)
    assert _temporaries(pg_cluster, with_sentinel) == []
    assert result.plan.database == with_sentinel and result.mismatches == []
    assert f"into database {with_sentinel!r}" in result.message
    steps = result.plan.steps
    assert f'CREATE DATABASE "{with_sentinel}_amprenta_tmp_<8 hex>"' in steps[1]
    assert f'DROP DATABASE "{with_sentinel}" WITH (FORCE)' in steps[-2]
    assert "RENAME TO" in steps[-2] and "left untouched" in steps[-1]
    with pytest.raises(psycopg.OperationalError):  # its session was ended by the drop
        holder.execute("SELECT 1")


def test_replace_of_a_63_byte_name_fits_its_temporary_database_under_the_limit(
    s3_engine: BackupEngine, s3_backup: Manifest, pg_cluster: ClusterBase,
) -> None:
    # 63 bytes; the 41 bytes left for the temporary name's stem end inside an "é"
    name = "é" * 30 + f"{next(_names):03d}"
    pg_cluster.create_database(name)
    try:
        pg_cluster.execute(SENTINEL, dbname=name)

        s3_engine.restore_backup(s3_backup.backup_id, name, mode="replace", confirm=name)

        assert_databases_equal(pg_cluster, "amprenta", pg_cluster, name)
        assert _temporaries(pg_cluster, name) == []
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def owned_by_a_lost_role(local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
                         pg_cluster: ClusterBase, new_name: Callable[[str], str]) -> Manifest:
    """A backup with a table owned by a role that was dropped since: restoring it with
    ownership (``no_owner`` false) makes pg_restore fail on ``ALTER TABLE ... OWNER TO``."""
    source, role = new_name("owned_src"), new_name("amprenta_gone")
    pg_cluster.create_database(source)
    pg_cluster.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    pg_cluster.execute(sql.SQL(
        "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2); "
        "ALTER TABLE kept OWNER TO {}").format(sql.Identifier(role)), dbname=source)
    manifest = make_backup(local_storage, catalog, source_conn.with_database(source),
                           target=f"pg_source.{source}")
    pg_cluster.drop_database(source)
    pg_cluster.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    return manifest


def _as_older_backup(data: bytes) -> bytes:
    """The manifest as backups wrote it before they recorded the database properties."""
    manifest = Manifest.from_json(data)
    manifest.properties = None
    return manifest.to_json()


def test_a_restore_needing_a_missing_role_is_refused_before_anything_is_created(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo, pg_cluster: ClusterBase,
    owned_by_a_lost_role: Manifest, with_sentinel: str,
) -> None:
    engine = engine_for(local_storage, catalog, {"pg_source": source_conn})
    with pytest.raises(PreconditionError, match=(
            r"refused, nothing was created: role amprenta_gone_\d+ does not exist on the "
            r"target: restore the globals first")):
        engine.restore_backup(owned_by_a_lost_role.backup_id, with_sentinel, mode="replace",
                              confirm=with_sentinel, target_conn_id="pg_source")
    assert _sentinel(pg_cluster, with_sentinel) == [("still here",)]
    assert _temporaries(pg_cluster, with_sentinel) == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_replace_whose_pg_restore_fails_leaves_the_database_untouched(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo, pg_cluster: ClusterBase,
    owned_by_a_lost_role: Manifest, with_sentinel: str, jobs: int,
) -> None:
    """An older backup (no properties in its manifest, so no role check): pg_restore fails."""
    folder = layout.backup_folder("database", owned_by_a_lost_role.target,
                                  owned_by_a_lost_role.backup_id)
    rewrite(local_storage, layout.manifest_key(folder), _as_older_backup)
    engine = engine_for(local_storage, catalog, {"pg_source": source_conn})

    with pytest.raises(RestoreError, match=(
            r"(?s)role .* does not exist.*temporary database '.*_amprenta_tmp_[0-9a-f]{8}' was "
            f"dropped and database '{with_sentinel}' was left untouched")):
        engine.restore_backup(owned_by_a_lost_role.backup_id, with_sentinel, mode="replace",
                              confirm=with_sentinel, target_conn_id="pg_source", jobs=jobs)

    assert _sentinel(pg_cluster, with_sentinel) == [("still here",)]
    assert _temporaries(pg_cluster, with_sentinel) == []


@pytest.mark.parametrize(("schemas", "tables"), [(["billing"], []), ([], ["orders"])])
def test_a_filtered_replace_is_refused_because_it_would_discard_the_rest(
    s3_engine: BackupEngine, s3_backup: Manifest, pg_cluster: ClusterBase,
    with_sentinel: str, schemas: list[str], tables: list[str],
) -> None:
    with pytest.raises(ConfigError, match="restore the subset into a new database"):
        s3_engine.restore_backup(s3_backup.backup_id, with_sentinel, mode="replace",
                                 confirm=with_sentinel, schemas=schemas, tables=tables)

    assert _sentinel(pg_cluster, with_sentinel) == [("still here",)]


def test_restoring_over_the_source_database_needs_replace_and_confirmation(
    local_storage: Storage, catalog: Catalog, pg_cluster: ClusterBase,
    new_name: Callable[[str], str], source_conn: PgConnInfo,
) -> None:
    source = new_name("self_src")
    load_sample(pg_cluster, source, rows=100)
    conn = source_conn.with_database(source)
    manifest = make_backup(local_storage, catalog, conn, target=f"pg_source.{source}")
    before = table_checksums(pg_cluster, source)
    pg_cluster.execute("INSERT INTO app.events (occurred_at, kind) VALUES (now(), 'later')",
                       dbname=source)
    engine = engine_for(local_storage, catalog, {"pg_source": source_conn})

    with pytest.raises(PreconditionError, match="is the database backup .* was taken from"):
        engine.restore_backup(manifest.backup_id, source)
    assert table_checksums(pg_cluster, source) != before

    engine.restore_backup(manifest.backup_id, source, mode="replace", confirm=source)
    assert table_checksums(pg_cluster, source) == before


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_corrupt_backup_is_refused_before_any_database_is_created(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo, pg_cluster: ClusterBase,
    new_name: Callable[[str], str], jobs: int,
) -> None:
    manifest = make_backup(local_storage, catalog, source_conn)
    rewrite(local_storage, manifest.key, flip_byte)
    engine = engine_for(local_storage, catalog, {"pg_source": source_conn})
    target = new_name("never")

    with pytest.raises(ChecksumMismatch, match=f"backup {manifest.backup_id} of target "
                                               "pg_source is corrupt: sha256"):
        engine.restore_backup(manifest.backup_id, target, jobs=jobs)

    assert not pg_cluster.database_exists(target)


@pytest.mark.parametrize("stem", [
    "partial",
    "x' host=203.0.113.9 dbname='postgres",  # read as a connection string it would go elsewhere
])
def test_a_schema_filter_restores_only_that_schema_into_exactly_the_named_database(
    s3_engine: BackupEngine, s3_backup: Manifest, pg_cluster: ClusterBase,
    new_name: Callable[[str], str], stem: str,
) -> None:
    target = new_name(stem)

    result = s3_engine.restore_backup(s3_backup.backup_id, target, schemas=["données"])

    assert list(result.row_counts) == ['"données"."café"'] and result.mismatches == []
    assert table_checksums(pg_cluster, target) == {
        "données.café": table_checksums(pg_cluster, "amprenta")["données.café"]}


def test_a_failing_pg_restore_drops_the_partly_restored_database(
    s3_engine: BackupEngine, s3_backup: Manifest,
    pg_cluster: ClusterBase, new_name: Callable[[str], str],
) -> None:
    target = new_name("failing")

    # billing.invoices has a foreign key to app.orders, which this filter leaves out
    with pytest.raises(RestoreError, match="app.orders.*partly restored database was dropped"):
        s3_engine.restore_backup(s3_backup.backup_id, target, schemas=["billing"])

    assert not pg_cluster.database_exists(target)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
                    min_size=1, max_size=20).map(str.strip).filter(
                        lambda s: s and len(s.encode()) <= MAX_NAME_BYTES))
def test_any_accepted_name_creates_exactly_that_database(
    source_conn: PgConnInfo, name: str,
) -> None:
    name = f"p{name}"
    with TargetServer(source_conn) as server:
        server.drop(name)
        server.create(name)
        try:
            rows = server.db.execute("SELECT datname FROM pg_database WHERE datname = %s",
                                     (name,)).fetchall()
            assert rows == [(name,)] and server.exists(name)
        finally:
            server.drop(name)
        assert not server.exists(name)


def test_malformed_requests_are_refused_with_the_reason(
    s3_engine: BackupEngine, s3_backup: Manifest,
) -> None:
    with pytest.raises(ConfigError, match="is 64 bytes long"):
        s3_engine.restore_backup(s3_backup.backup_id, "x" * 64)
    with pytest.raises(PreconditionError, match="system database 'template1'"):
        s3_engine.restore_backup(s3_backup.backup_id, "template1", mode="replace",
                              confirm="template1")
    with pytest.raises(PreconditionError, match="no completed backup"):
        s3_engine.restore_backup("latest", "anything", source_target="pg_nobody")
    with pytest.raises(ConfigError, match="connection 'pg_nowhere' is not defined"):
        s3_engine.restore_backup(s3_backup.backup_id, "anything", target_conn_id="pg_nowhere")
