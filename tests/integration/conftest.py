"""Fixtures for engine tests against the session's real PostgreSQL cluster and S3 server."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage, S3Storage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.dataset import load_bulk, load_sample
from amprenta_backup.sandbox.s3server import MotoServer

_names = itertools.count(1)


def conninfo(cluster: ClusterBase, dbname: str) -> PgConnInfo:
    info = cluster.conninfo(dbname)
    return PgConnInfo(host=info["host"], port=int(info["port"]), user=info["user"],
                      dbname=dbname, password=info["password"])


@pytest.fixture(scope="session")
def source_conn(pg_cluster: ClusterBase) -> PgConnInfo:
    """The sample database (several schemas, enums, partitions, non-ASCII names ...)."""
    load_sample(pg_cluster, "amprenta")
    return conninfo(pg_cluster, "amprenta")


@pytest.fixture(scope="session")
def big_source_conn(pg_cluster: ClusterBase) -> PgConnInfo:
    """A database big enough that its dump spans several multipart parts."""
    load_bulk(pg_cluster, "bigsrc", megabytes=40)
    return conninfo(pg_cluster, "bigsrc")


@pytest.fixture
def fresh_db(pg_cluster: ClusterBase) -> Iterator[Callable[[str], str]]:
    """Create uniquely named empty databases; all are dropped after the test."""
    made: list[str] = []

    def make(stem: str) -> str:
        name = f"{stem}_{next(_names)}"
        pg_cluster.create_database(name)
        made.append(name)
        return name

    yield make
    for name in made:
        pg_cluster.drop_database(name)


@pytest.fixture
def new_name(pg_cluster: ClusterBase) -> Iterator[Callable[[str], str]]:
    """Names of databases that do not exist yet; whatever gets created is dropped afterwards."""
    names: list[str] = []

    def make(stem: str) -> str:
        names.append(f"{stem}_{next(_names)}")
        return names[-1]

    yield make
    for name in names:
        pg_cluster.drop_database(name)


@pytest.fixture
def fresh_catalog(pg_cluster: ClusterBase, fresh_db: Callable[[str], str]
                  ) -> Callable[[], Catalog]:
    def make() -> Catalog:
        return Catalog(conninfo(pg_cluster, fresh_db("catalog")))

    return make


@pytest.fixture
def catalog(fresh_catalog: Callable[[], Catalog]) -> Catalog:
    """An empty catalog in its own database."""
    return fresh_catalog()


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "backups")


@pytest.fixture
def s3_storage(moto_server: MotoServer) -> S3Storage:
    """An empty bucket of its own on the session's moto server."""
    bucket = moto_server.create_bucket(f"test-{next(_names)}")
    return S3Storage(moto_server.client(), bucket)
