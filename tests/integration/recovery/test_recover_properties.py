"""``recover`` onto a NEW cluster, the catalog gone too, brings back the roles (globals), each
database's properties and its data: a source with roles owning objects, grants between them,
settings, a comment, REVOKE CONNECT, contrib extensions, a 'C' and an ICU collation (the
restore tests' source)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from amprenta_backup.core.dbprops import read_properties
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pitr.localserver import free_port
from amprenta_backup.sandbox.cluster import ClusterBase, ThrowawayCluster
from amprenta_backup.sandbox.compare import table_checksums
from tests.integration.cli.test_backups import _uri
from tests.integration.conftest import conninfo
from tests.integration.restore.test_properties import (
    DATABASE_SQL,
    DATABASES,
    PASSWORDS,
    SOURCE_SQL,
    _globals_without_bootstrap,
    _pg,
)
from tests.support.pginstall import install_without

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThrowawayCluster, Cli]]:
    """The source cluster, its three databases backed up; ``cli(server, *args)``."""
    storage = tmp_path_factory.mktemp("props") / "b"
    with ThrowawayCluster() as cluster:
        for statement in SOURCE_SQL:
            cluster.execute(statement)
        for db, statements in DATABASE_SQL.items():
            for statement in statements:
                cluster.execute(statement, dbname=db)
        cluster.create_database("catalog")
        env = {"PATH": os.environ["PATH"],
               "AIRFLOW_CONN_PG_SRC": _uri(conninfo(cluster, "postgres"), "postgres"),
               "AIRFLOW_CONN_BACKUP_CATALOG": _uri(conninfo(cluster, "catalog"), "catalog"),
               "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(storage)}

        def cli(server: ClusterBase | None, *args: str, **more: str
                ) -> subprocess.CompletedProcess[str]:
            extra = {"AIRFLOW_CONN_PG_NEW": _uri(conninfo(server, "postgres"), "postgres")} \
                if server else {}
            return subprocess.run([sys.executable, "-m", "amprenta_backup.cli", *args],
                                  env={**env, **extra, **more}, capture_output=True, text=True,
                                  timeout=600)

        for db in DATABASES:
            assert cli(None, "backup", f"pg_src:{db}").returncode == 0
        yield cluster, cli


def _roles_and_databases(cluster: ClusterBase) -> list[tuple[object, ...]]:
    return cluster.query("SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' UNION ALL "
                         "SELECT datname FROM pg_database ORDER BY 1")


def test_recover_brings_back_roles_properties_and_data(
    source: tuple[ThrowawayCluster, Cli], new_server: ThrowawayCluster,
) -> None:
    """The catalog went with the old server (its connection refuses): a new catalog database
    on the new server, and every role, property and row as on the source."""
    cluster, cli = source
    gone = {"AIRFLOW_CONN_BACKUP_CATALOG": _uri(PgConnInfo(
        host="127.0.0.1", port=free_port(), user="postgres", password="x"), "catalog")}
    empty = _roles_and_databases(new_server)
    plan = cli(new_server, "recover", "--server", "pg_new", "--dry-run", **gone)
    assert plan.returncode == 0, plan.stderr
    assert "create the roles and tablespaces of server" in plan.stdout
    assert "create the catalog database 'amprenta_catalog' on the new server" in plan.stdout
    assert _roles_and_databases(new_server) == empty  # the dry run created nothing
    done = cli(new_server, "recover", "--server", "pg_new", "--json", **gone)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)

    assert report["passed"] is True, report["summary"]
    assert report["rebuilt_records"] == len(DATABASES)
    assert new_server.database_exists("amprenta_catalog")
    assert "created 5 roles" in report["globals"][0]
    assert _globals_without_bootstrap(new_server) == _globals_without_bootstrap(cluster)
    props = {d["database"]: d for d in report["databases"]}
    assert any("OWNER app_owner" in p for p in props["app_main"]["properties"])
    for db in DATABASES:
        assert {c["name"]: c["status"] for c in props[db]["checks"]}["properties"] == "ok"
        assert _pg(new_server, "pg_dump", "--schema-only", "--create", dbname=db) == \
            _pg(cluster, "pg_dump", "--schema-only", "--create", dbname=db)
        assert table_checksums(new_server, db) == table_checksums(cluster, db)
        with cluster.connect(db) as a, new_server.connect(db) as b:
            assert read_properties(b).comparable() == read_properties(a).comparable()
    nogrants = {**new_server.conninfo("app_main"), "user": "app_nogrants",
                "password": PASSWORDS["app_nogrants"]}
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(**nogrants).close()  # REVOKE CONNECT ... FROM PUBLIC came back


def test_a_server_without_an_extension_gets_no_database(
    source: tuple[ThrowawayCluster, Cli],
) -> None:
    _, cli = source
    root = Path(tempfile.mkdtemp(prefix="amprenta-noext-", dir="/tmp"))
    root.chmod(0o755)
    try:
        with ThrowawayCluster(bin_dir=install_without(root / "pg", ("citext",))) as bare:
            for args in (("--dry-run",), ()):  # the dry run says what the real run refuses
                done = cli(bare, "recover", "--server", "pg_new", *args)
                assert done.returncode == 2, done.stdout + done.stderr
                assert "so nothing was created" in done.stderr
                assert "app_main: extension citext (1.6 in the backup) is not available on " \
                       "the target: install postgresql-contrib" in done.stderr
            assert [r[0] for r in bare.query("SELECT datname FROM pg_database ORDER BY 1")] \
                == ["postgres", "template0", "template1"]
            assert bare.query("SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_'") == [
                ("postgres",)]  # not even the roles of the globals
    finally:
        shutil.rmtree(root, ignore_errors=True)
