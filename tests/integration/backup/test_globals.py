"""Globals (roles, memberships, per-role settings) once per server per run, and the database
properties in every manifest, against the session's real cluster."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import zstandard

from amprenta_backup.core.backup.globals import GlobalsCapture
from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import RunContext
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pipeline import Compression
from amprenta_backup.core.restore.globals import restore_globals
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.hooks.context import backup_id_for
from amprenta_backup.sandbox.cluster import ClusterBase, ThrowawayCluster
from tests.integration.conftest import conninfo

SETTINGS = BackupSettings(prefix="database/", compression=Compression(level=1, threads=0))
RUN = RunContext(dag_id="daily_backup", run_id="scheduled__2026-12-01T01:00:00+00:00",
                 logical_date=datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
PASSWORD = "Gl0bals-Secret-Pw"


@pytest.fixture
def two_databases(pg_cluster: ClusterBase) -> Iterator[tuple[str, str]]:
    """Two databases owned by a role of their own, with settings, a comment and an ACL."""
    names = ("glob_a", "glob_b")
    pg_cluster.execute(
        f"CREATE ROLE glob_owner LOGIN PASSWORD '{PASSWORD}'; CREATE ROLE glob_ro;"
        "GRANT glob_ro TO glob_owner; ALTER ROLE glob_ro SET work_mem = '4MB'")
    for name in names:
        pg_cluster.execute(f"CREATE DATABASE {name} OWNER glob_owner")
    pg_cluster.execute(
        "ALTER DATABASE glob_a SET work_mem = '8MB'; COMMENT ON DATABASE glob_a IS 'app data';"
        "ALTER DATABASE glob_a CONNECTION LIMIT 20; REVOKE CONNECT ON DATABASE glob_a FROM "
        "PUBLIC; GRANT CONNECT ON DATABASE glob_a TO glob_ro;"
        "ALTER ROLE glob_ro IN DATABASE glob_a SET search_path = app, public")
    pg_cluster.execute("CREATE TABLE t (id int); ALTER TABLE t OWNER TO glob_ro", dbname="glob_a")
    yield names
    for name in names:
        pg_cluster.drop_database(name)
    pg_cluster.execute("DROP ROLE glob_owner; DROP ROLE glob_ro")


def _stored_sql(storage: Storage, key: str) -> str:
    raw = storage.get_bytes(key)
    return zstandard.ZstdDecompressor().stream_reader(raw).read().decode()


def test_targets_of_one_server_in_one_run_share_one_globals_object(
    local_storage: Storage, catalog: Catalog, pg_cluster: ClusterBase,
    two_databases: tuple[str, str],
) -> None:
    runner = BackupRunner(local_storage, catalog, SETTINGS)
    manifests = [runner.run(f"pg_main.{db}", conninfo(pg_cluster, db), RUN,
                            backup_id_for(RUN, f"pg_main.{db}")) for db in two_databases]
    refs = [m.globals_ref() for m in manifests]
    assert refs[0] is not None and refs[0] == refs[1]
    ref = refs[0]
    globals_objects = [o.key for o in local_storage.list_objects("database/_globals/")]
    assert sorted(globals_objects) == sorted([ref.key, ref.key.rsplit("/", 1)[0]
                                              + "/globals.json"])
    stored = local_storage.get_bytes(ref.key)
    assert hashlib.sha256(stored).hexdigest() == ref.sha256 and len(stored) == ref.stored_bytes
    text = _stored_sql(local_storage, ref.key)
    assert "CREATE ROLE glob_owner;" in text and "GRANT glob_ro TO glob_owner" in text
    assert "ALTER ROLE glob_ro SET work_mem TO '4MB';" in text
    assert ref.role_passwords and "PASSWORD 'SCRAM-SHA-256$" in text
    assert {"glob_owner", "glob_ro"} <= set(ref.roles)


def test_manifest_records_the_database_properties(
    local_storage: Storage, catalog: Catalog, pg_cluster: ClusterBase,
    two_databases: tuple[str, str],
) -> None:
    runner = BackupRunner(local_storage, catalog, SETTINGS)
    manifest = runner.run("pg_main.glob_a", conninfo(pg_cluster, "glob_a"), RunContext(),
                          backup_id_for(RUN, "props"))
    props = manifest.properties
    assert props is not None
    assert props["owner"] == "glob_owner" and props["comment"] == "app data"
    assert props["connection_limit"] == 20 and props["encoding"] == "UTF8"
    assert props["settings"] == ["work_mem=8MB"]
    assert props["role_settings"] == {"glob_ro": ["search_path=app, public"]}
    acl = {(e["grantee"], tuple(e["privileges"])) for e in props["acl"]}
    assert ("glob_ro", ("CONNECT",)) in acl and (None, ("TEMPORARY",)) in acl  # None: PUBLIC
    assert {"glob_owner", "glob_ro"} <= set(props["roles"])
    assert props["locale_provider"] == "libc" and props["collate"]


def test_without_pg_authid_the_globals_fall_back_to_no_role_passwords(
    local_storage: Storage, catalog: Catalog, pg_cluster: ClusterBase,
    two_databases: tuple[str, str],
) -> None:
    """A login role that is not a superuser cannot read pg_authid, as on RDS or Cloud SQL."""
    base = conninfo(pg_cluster, "glob_b")
    owner = PgConnInfo(base.host, base.port, "glob_owner", "glob_b", password=PASSWORD)
    manifest = BackupRunner(local_storage, catalog, SETTINGS).run(
        "pg_app.glob_b", owner, RunContext(), backup_id_for(RUN, "nopw"))
    ref = manifest.globals_ref()
    assert ref is not None and ref.role_passwords is False
    text = _stored_sql(local_storage, ref.key)
    assert "CREATE ROLE glob_owner;" in text and "PASSWORD" not in text
    with ThrowawayCluster() as new:  # the restore report says the passwords must be set
        result = restore_globals(local_storage, ref, conninfo(new, "postgres"))
        assert "glob_owner" in result.created_roles and result.problems == []
        assert any("holds no role passwords" in note and "glob_owner" in note
                   for note in result.notes)
        assert "holds no role passwords" in result.message
        assert new.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'glob_owner'") \
            == [(None,)]


def test_a_tablespace_whose_directory_is_gone_is_reported_not_failed(
    local_storage: Storage,
) -> None:
    """The directory of a tablespace does not exist where the globals are restored."""
    with ThrowawayCluster() as source, ThrowawayCluster() as target:
        location = source.base_dir / "ts_data"
        location.mkdir()
        source.give_to_owner(location)
        source.execute(f"CREATE TABLESPACE ts_gone LOCATION '{location}'")
        source.execute("CREATE ROLE ts_user; GRANT CREATE ON TABLESPACE ts_gone TO ts_user")
        ref = GlobalsCapture(local_storage, SETTINGS).ensure(
            conninfo(source, "postgres"), RunContext(), backup_id_for(RUN, "ts"))
        assert ref.tablespaces == ("ts_gone",)
        source.execute("DROP TABLESPACE ts_gone")
        location.rmdir()

        result = restore_globals(local_storage, ref, conninfo(target, "postgres"))
    assert result.created_roles == ["ts_user"] and result.tablespaces_created == []
    (problem,) = result.problems
    assert f"tablespace ts_gone: its location {location} does not exist on the target" in problem
    assert any(s.startswith("GRANT ALL ON TABLESPACE ts_gone TO ts_user: tablespace ts_gone was "
                            "not created") for s in result.skipped), result.skipped
