"""Shared pytest fixtures."""

from __future__ import annotations

from tests.support import airflow_env

AIRFLOW_HOME = airflow_env.configure()  # before anything imports airflow

import os  # noqa: E402

# No test reaches for a cloud address: an S3 client of this process (or of a child that
# inherits its environment: Airflow deployments) left without credentials fails at once
# instead of asking the EC2 metadata service; every test's S3 client names its endpoint.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from collections.abc import Callable, Iterator  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from amprenta_backup.sandbox.cluster import ClusterBase, ThrowawayCluster  # noqa: E402
from amprenta_backup.sandbox.container import start_cluster  # noqa: E402
from amprenta_backup.sandbox.s3server import MotoServer  # noqa: E402
from tests.support.markers import marks_for  # noqa: E402

# Property tests check what is refused and accepted, not speed (bench/ measures speed): no
# per-example deadline, which a loaded 2-core machine missed on a first example's imports.
settings.register_profile("amprenta", deadline=None)
settings.load_profile("amprenta")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder: integration, airflow, e2e (a conftest's ``pytestmark``
    would not apply to the package's modules)."""
    for item in items:
        for name in marks_for(item.path):
            item.add_marker(getattr(pytest.mark, name))


# ============================================================================================
# BEGIN sandbox fixtures (amprenta_backup.sandbox): a throwaway PostgreSQL cluster and a moto
# S3 server, one of each per test session. Self-contained; imports only from the sandbox.
# ============================================================================================


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[ClusterBase]:
    """A started cluster of the system's PostgreSQL (Debian's 15 here) for the session
    (testcontainers if opted in)."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def pg_cluster_of(pg_cluster: ClusterBase) -> Iterator[Callable[[int], ClusterBase]]:
    """``pg_cluster_of(17)``: a started throwaway cluster of that PostgreSQL major, one per
    major for the module (the session's cluster for its own major), stopped at its end."""
    started: dict[int, ClusterBase] = {pg_cluster.server_major(): pg_cluster}
    own: list[ClusterBase] = []

    def get(major: int) -> ClusterBase:
        if major not in started:
            cluster = start_cluster(major=major)
            own.append(cluster)
            started[major] = cluster
        return started[major]

    try:
        yield get
    finally:
        with ThreadPoolExecutor() as pool:  # each stop waits for its server's shutdown
            list(pool.map(lambda cluster: cluster.stop(), own))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A started moto S3 server on 127.0.0.1, for the session."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def own_moto() -> Iterator[MotoServer]:
    """A moto server of the test's own, to be killed or frozen."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def new_server() -> Iterator[ThrowawayCluster]:
    """A NEW empty cluster for one test: its own data directory, only the bootstrap superuser
    (what a replacement server looks like after a disaster)."""
    cluster = ThrowawayCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


# ============================================================================================
# END sandbox fixtures
# ============================================================================================
