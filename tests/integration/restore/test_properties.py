"""Disaster recovery onto a NEW, empty cluster: globals, then each database with its properties.

A source cluster of its own with three databases (a contrib extension in two, libc 'C' and ICU
collations, roles owning objects in each and grants between them, database settings, a
comment, REVOKE CONNECT); a second cluster with its own data directory and no roles; a third
whose installation lacks citext (a real server built without it, tests/support/pginstall.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.dbprops import read_properties
from amprenta_backup.core.errors import ConfigError, PreconditionError
from amprenta_backup.core.models import Manifest, RunContext
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pipeline import Compression
from amprenta_backup.core.restore.globals import GlobalsRestoreResult, restore_globals
from amprenta_backup.core.restore.request import REPLACE, RestoreRequest
from amprenta_backup.core.restore.run import Restorer, RestoreResult
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.hooks.context import backup_id_for
from amprenta_backup.sandbox.cluster import ClusterBase, ThrowawayCluster
from amprenta_backup.sandbox.compare import table_checksums
from tests.integration.conftest import conninfo
from tests.support.pginstall import install_without

DATABASES = ("app_main", "app_c", "app_icu")
PASSWORDS = {"app_owner": "Owner-Pw-1", "app_etl": "Etl-Pw-2", "app_nogrants": "NoGrants-Pw-3",
             "app_reader": "Reader-Pw-4"}
RUN = RunContext(dag_id="daily_backup", run_id="scheduled__2026-12-01T01:00:00+00:00",
                 logical_date=datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
SETTINGS = BackupSettings(prefix="database/", compression=Compression(level=1, threads=0))
_NOISE = ("\\restrict", "\\unrestrict", "-- Dumped from", "-- Dumped by")
SOURCE_SQL = [
    f"CREATE ROLE app_owner LOGIN PASSWORD '{PASSWORDS['app_owner']}'",
    "CREATE ROLE app_ro NOLOGIN",
    f"CREATE ROLE app_etl LOGIN CONNECTION LIMIT 3 PASSWORD '{PASSWORDS['app_etl']}'",
    f"CREATE ROLE app_nogrants LOGIN PASSWORD '{PASSWORDS['app_nogrants']}'",
    f"CREATE ROLE app_reader LOGIN PASSWORD '{PASSWORDS['app_reader']}' IN ROLE app_ro",
    "GRANT app_ro TO app_etl", "ALTER ROLE app_etl SET statement_timeout = '5min'",
    "COMMENT ON ROLE app_ro IS 'read-only access'",
    "CREATE DATABASE app_main OWNER app_owner",
    "CREATE DATABASE app_c TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C' OWNER app_etl",
    "CREATE DATABASE app_icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
    "OWNER app_owner",
    "ALTER DATABASE app_main SET work_mem = '8MB'",
    "ALTER DATABASE app_main SET search_path = app, \"$user\", public",
    "COMMENT ON DATABASE app_main IS 'the application''s data'",
    "ALTER DATABASE app_main CONNECTION LIMIT 50",
    "REVOKE CONNECT ON DATABASE app_main FROM PUBLIC",
    "GRANT CONNECT ON DATABASE app_main TO app_ro",
    "GRANT CREATE ON DATABASE app_main TO app_etl WITH GRANT OPTION",
    "ALTER ROLE app_ro IN DATABASE app_main SET statement_timeout = '30s'",
]
DATABASE_SQL = {
    "app_main": [
        "CREATE EXTENSION citext", "CREATE SCHEMA app AUTHORIZATION app_owner",
        "CREATE TABLE app.users (id serial PRIMARY KEY, email citext UNIQUE NOT NULL)",
        "ALTER TABLE app.users OWNER TO app_owner",
        "INSERT INTO app.users (email) SELECT 'user' || g || '@Example.com' "
        "FROM generate_series(1, 500) g",
        "GRANT USAGE ON SCHEMA app TO app_ro", "GRANT SELECT ON app.users TO app_ro"],
    "app_c": [
        "CREATE SCHEMA etl AUTHORIZATION app_etl",
        "CREATE TABLE etl.jobs (name text COLLATE \"C\" PRIMARY KEY, runs int)",
        "ALTER TABLE etl.jobs OWNER TO app_etl", "GRANT SELECT, UPDATE ON etl.jobs TO app_owner",
        "INSERT INTO etl.jobs SELECT 'job-' || g, g FROM generate_series(1, 200) g"],
    "app_icu": [
        "CREATE EXTENSION pgcrypto",
        "CREATE TABLE words (w text PRIMARY KEY, h bytea)", "ALTER TABLE words OWNER TO app_ro",
        "INSERT INTO words SELECT x, digest(x, 'sha256') FROM unnest(ARRAY['Éclair', "
        "'eclair', 'Zebra', 'apple', 'Ångström']) x",
        "GRANT SELECT ON words TO app_reader"],
}


@dataclass
class Recovered:
    source: ThrowawayCluster
    target: ThrowawayCluster
    storage: LocalStorage
    catalog: Catalog
    manifests: dict[str, Manifest]
    refused_before_globals: str
    globals_result: GlobalsRestoreResult
    globals_again: GlobalsRestoreResult
    dry_run_text: str
    results: dict[str, RestoreResult]

    def restorer(self, **extra: ClusterBase) -> Restorer:
        clusters = {"pg_source": self.source, "pg_new": self.target, **extra}

        def resolve(conn_id: str, db: str | None) -> PgConnInfo:
            if conn_id not in clusters:
                raise ConfigError(f"connection {conn_id} is not defined")
            return conninfo(clusters[conn_id], db or "postgres")

        return Restorer(self.storage, self.catalog, resolve)


def _pg(cluster: ThrowawayCluster, tool: str, *args: str, dbname: str = "postgres") -> str:
    done = subprocess.run([str(cluster.bin_dir / tool), *args],
                          env={**os.environ, **cluster.env(dbname)}, capture_output=True,
                          text=True, check=True)
    return "\n".join(line for line in done.stdout.splitlines() if not line.startswith(_NOISE))


def _globals_without_bootstrap(cluster: ThrowawayCluster) -> str:
    return "\n".join(line for line in _pg(cluster, "pg_dumpall", "--globals-only").splitlines()
                     if not line.startswith(("CREATE ROLE postgres;", "ALTER ROLE postgres ")))


def _connect_as(cluster: ClusterBase, role: str, dbname: str) -> None:
    info = {**cluster.conninfo(dbname), "user": role, "password": PASSWORDS[role]}
    with psycopg.connect(**info) as db:
        db.execute("SELECT 1")


@pytest.fixture(scope="module")
def catalog_db(pg_cluster: ClusterBase) -> Iterator[Catalog]:
    pg_cluster.create_database("props_catalog")
    yield Catalog(conninfo(pg_cluster, "props_catalog"))
    pg_cluster.drop_database("props_catalog")


@pytest.fixture(scope="module")
def recovered(catalog_db: Catalog, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Recovered]:
    storage = LocalStorage(tmp_path_factory.mktemp("dr") / "backups")
    with ThrowawayCluster() as source, ThrowawayCluster() as target:
        for statement in SOURCE_SQL:
            source.execute(statement)
        for db, statements in DATABASE_SQL.items():
            for statement in statements:
                source.execute(statement, dbname=db)
        runner = BackupRunner(storage, catalog_db, SETTINGS)
        manifests = {db: runner.run(f"pg_source.{db}", conninfo(source, db), RUN,
                                    backup_id_for(RUN, f"pg_source.{db}")) for db in DATABASES}
        state = Recovered(source, target, storage, catalog_db, manifests, "",
                          None, None, "", {})  # type: ignore[arg-type]
        new = "pg_new"
        with pytest.raises(PreconditionError) as refused:
            state.restorer().plan(RestoreRequest(manifests["app_main"].backup_id, "app_main",
                                                 target_conn_id=new, dry_run=True))
        state.refused_before_globals = str(refused.value)
        ref = manifests["app_main"].globals_ref()
        assert ref is not None
        state.globals_result = restore_globals(storage, ref, conninfo(target, "postgres"))
        state.globals_again = restore_globals(storage, ref, conninfo(target, "postgres"))
        state.dry_run_text = state.restorer().run(RestoreRequest(
            manifests["app_main"].backup_id, "app_main", target_conn_id=new,
            dry_run=True)).message
        state.results = {db: state.restorer().run(RestoreRequest(
            manifests[db].backup_id, db, target_conn_id=new)) for db in DATABASES}
        yield state


def test_a_restore_before_the_globals_is_refused_naming_the_roles_and_the_fix(
    recovered: Recovered,
) -> None:
    text = recovered.refused_before_globals
    backup_id = recovered.manifests["app_main"].backup_id
    assert "role app_owner does not exist on the target: restore the globals first" in text
    assert f"backup {backup_id}'s globals" in text and "nothing was created" in text
    for role in ("app_ro", "app_etl"):
        assert f"role {role} does not exist" in text


def test_globals_are_restored_additively(recovered: Recovered) -> None:
    first, again = recovered.globals_result, recovered.globals_again
    assert set(first.created_roles) == {"app_owner", "app_ro", "app_etl", "app_nogrants",
                                        "app_reader"}
    assert first.existing_roles == ["postgres"]  # the new server's bootstrap superuser
    assert first.problems == [] and first.role_passwords
    assert len(first.memberships) == 2 and first.settings
    assert again.created_roles == [] and again.memberships == [] and again.problems == []
    assert sorted(again.existing_roles) == sorted([*first.created_roles, "postgres"])
    assert _globals_without_bootstrap(recovered.source) == \
        _globals_without_bootstrap(recovered.target)


def test_role_passwords_came_back_and_revoke_connect_is_honoured(recovered: Recovered) -> None:
    target = recovered.target
    _connect_as(target, "app_owner", "app_main")  # the password hash was restored
    _connect_as(target, "app_reader", "app_main")  # CONNECT through membership of app_ro
    _connect_as(target, "app_nogrants", "app_c")  # PUBLIC may connect there, as on the source
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _connect_as(target, "app_nogrants", "app_main")


def test_every_database_equals_its_source_schema_data_and_properties(
    recovered: Recovered,
) -> None:
    source, target = recovered.source, recovered.target
    for db in DATABASES:
        assert recovered.results[db].mismatches == []
        assert _pg(target, "pg_dump", "--schema-only", "--create", dbname=db) == \
            _pg(source, "pg_dump", "--schema-only", "--create", dbname=db)
        assert table_checksums(target, db) == table_checksums(source, db)
        with source.connect(db) as a, target.connect(db) as b:
            assert read_properties(b).comparable() == read_properties(a).comparable()
    icu = recovered.results["app_icu"].properties
    assert icu is not None and "LOCALE_PROVIDER icu en-US" in icu.applied[0]


def test_the_report_lists_what_the_restore_set(recovered: Recovered) -> None:
    result = recovered.results["app_main"]
    assert result.properties is not None and result.properties.differences == []
    message = result.message
    for expected in ("OWNER app_owner", "ALTER DATABASE SET work_mem=8MB",
                     "COMMENT ON DATABASE", "CONNECTION LIMIT 50", "GRANT CONNECT TO app_ro",
                     "ALTER ROLE app_ro IN DATABASE SET statement_timeout=30s"):
        assert expected in message
    assert result.to_dict()["properties"]["applied"] == result.properties.applied


def test_the_dry_run_names_the_checks(recovered: Recovered) -> None:
    text = recovered.dry_run_text
    assert text.startswith("dry run: nothing was touched")
    assert "checked   roles app_etl, app_owner, app_ro" in text
    assert "checked   extension citext" in text and "available" in text
    assert "set the database properties as backed up" in text


def test_a_replace_restore_keeps_owner_comment_settings_and_acl(recovered: Recovered) -> None:
    backup_id = recovered.manifests["app_main"].backup_id
    recovered.target.execute("ALTER DATABASE app_main RESET ALL; "
                             "COMMENT ON DATABASE app_main IS NULL")
    result = recovered.restorer().run(RestoreRequest(
        backup_id, "app_main", target_conn_id="pg_new", mode=REPLACE, confirm="app_main"))
    assert result.mismatches == [] and result.properties is not None
    with recovered.source.connect("app_main") as a, recovered.target.connect("app_main") as b:
        assert read_properties(b).comparable() == read_properties(a).comparable()
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _connect_as(recovered.target, "app_nogrants", "app_main")


def test_no_owner_still_restores_and_keeps_public_out(recovered: Recovered) -> None:
    backup_id = recovered.manifests["app_main"].backup_id
    result = recovered.restorer().run(RestoreRequest(
        backup_id, "app_main_noowner", target_conn_id="pg_new", no_owner=True))
    try:
        assert result.mismatches == [] and result.properties is not None
        assert result.properties.differences == [] and result.properties.skipped
        with recovered.target.connect("app_main_noowner") as db:
            props = read_properties(db)
        assert props.owner == "postgres" and props.comment == "the application's data"
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            _connect_as(recovered.target, "app_nogrants", "app_main_noowner")
    finally:
        recovered.target.drop_database("app_main_noowner")


def test_a_server_without_the_extension_is_refused_before_anything_is_created(
    recovered: Recovered,
) -> None:
    root = Path(tempfile.mkdtemp(prefix="amprenta-noext-", dir="/tmp"))
    root.chmod(0o755)
    try:
        with ThrowawayCluster(bin_dir=install_without(root / "pg", ("citext",))) as bare:
            before = bare.query("SELECT datname FROM pg_database ORDER BY 1")
            ref = recovered.manifests["app_main"].globals_ref()
            assert ref is not None
            restore_globals(recovered.storage, ref, conninfo(bare, "postgres"))
            request = RestoreRequest(recovered.manifests["app_main"].backup_id, "app_main",
                                     target_conn_id="pg_bare")
            with pytest.raises(PreconditionError) as refused:
                recovered.restorer(pg_bare=bare).run(request)
            assert "extension citext (1.6 in the backup) is not available on the target: " \
                   "install postgresql-contrib" in str(refused.value)
            assert "nothing was created" in str(refused.value)
            assert bare.query("SELECT datname FROM pg_database ORDER BY 1") == before
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_an_existing_role_is_left_as_it_is_and_reported(recovered: Recovered) -> None:
    """Restoring the globals never alters a role the server has: its attributes, settings and
    memberships stay as they are there, even where they differ from the backup."""
    target = recovered.target
    changed = ("ALTER ROLE app_etl NOLOGIN CONNECTION LIMIT 1; ALTER ROLE app_etl RESET ALL; "
               "REVOKE app_ro FROM app_etl")
    state = ("SELECT r.rolcanlogin, r.rolconnlimit, r.rolconfig, a.rolpassword, "
             "ARRAY(SELECT roleid::regrole::text FROM pg_auth_members WHERE member = r.oid) "
             "FROM pg_roles r JOIN pg_authid a USING (oid) WHERE r.rolname = 'app_etl'")
    target.execute(changed)
    try:
        before = target.query(state)
        ref = recovered.manifests["app_main"].globals_ref()
        assert ref is not None
        result = restore_globals(recovered.storage, ref, conninfo(target, "postgres"))
        assert "app_etl" in result.existing_roles and result.created_roles == []
        assert result.memberships == [] and result.settings == [] and result.problems == []
        assert target.query(state) == before and before[0][:3] == (False, 1, None)
        assert "existing roles left as they are" in result.message
    finally:
        target.execute("ALTER ROLE app_etl LOGIN CONNECTION LIMIT 3; "
                       "ALTER ROLE app_etl SET statement_timeout = '5min'; "
                       "GRANT app_ro TO app_etl")
