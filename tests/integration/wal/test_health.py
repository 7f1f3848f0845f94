"""WAL health from a real archiver: healthy, failing, lagging, off, and archiving elsewhere."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from amprenta_backup.core.health import Level
from amprenta_backup.core.models import utcnow
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.health import check_wal, read_state
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.s3server import MotoServer
from tests.integration.conftest import conninfo
from tests.support.wal import PREFIX, WalSetup, archiver_stats, start_archiving_cluster

TARGET = "pg_health.pitr"


@pytest.fixture(scope="module")
def wal(moto_server: MotoServer) -> Iterator[WalSetup]:
    setup = start_archiving_cluster(moto_server, moto_server.create_bucket("wal-health"), TARGET,
                                    extra={"archive_timeout": "60"})
    try:
        setup.cluster.execute("CREATE TABLE t AS SELECT 1 AS x")
        setup.switch_wal()
        yield setup
    finally:
        setup.stop()


def levels(results: list) -> dict[str, Level]:  # type: ignore[type-arg]
    return {r.name: r.status for r in results}


def test_a_healthy_archiver_reports_ok_with_its_rpo(wal: WalSetup) -> None:
    state = read_state(conninfo(wal.cluster, "postgres"))
    results = check_wal(state, TARGET, utcnow(), 900, wal.archive)
    assert levels(results) == {"wal_archive_failures": Level.OK, "wal_rpo": Level.OK,
                               "wal_backlog": Level.OK, "wal_in_archive": Level.OK}
    assert all(r.target == TARGET for r in results)
    assert state.archive_timeout_seconds == 60


def test_unarchived_wal_older_than_the_rpo_target_is_critical(wal: WalSetup) -> None:
    wal.cluster.execute("INSERT INTO t SELECT 2")  # WAL after the last archived segment
    state = read_state(conninfo(wal.cluster, "postgres"))
    assert state.pending
    later = utcnow() + timedelta(minutes=20)
    rpo = {r.name: r for r in check_wal(state, TARGET, later, 900)}["wal_rpo"]
    assert rpo.status == Level.CRITICAL and "target 900 s" in rpo.detail
    lagging = {r.name: r for r in check_wal(state, TARGET, utcnow() + timedelta(minutes=3),
                                            900)}["wal_rpo"]
    assert lagging.status == Level.WARNING and "archive_timeout is 60 s" in lagging.detail


def test_a_failing_archive_command_is_critical(wal: WalSetup) -> None:
    wal.cluster.execute("ALTER SYSTEM SET archive_command = 'false'")
    wal.cluster.execute("SELECT pg_reload_conf()")
    try:
        wal.cluster.execute("INSERT INTO t SELECT 3")
        wal.cluster.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while archiver_stats(wal.cluster)["failed_count"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        results = check_wal(read_state(conninfo(wal.cluster, "postgres")), TARGET, utcnow(), 900)
        failures = {r.name: r for r in results}["wal_archive_failures"]
        assert failures.status == Level.CRITICAL and "no success since" in failures.detail
        assert "archive_command" in failures.hint
    finally:
        wal.cluster.execute("ALTER SYSTEM RESET archive_command")
        wal.cluster.execute("SELECT pg_reload_conf()")
    wal.switch_wal()  # recovers: the archiver retries and succeeds
    results = check_wal(read_state(conninfo(wal.cluster, "postgres")), TARGET, utcnow(), 900)
    assert levels(results)["wal_archive_failures"] == Level.OK


def test_archiving_into_another_place_than_checked_is_critical(wal: WalSetup) -> None:
    elsewhere = WalArchive(wal.archive.storage, PREFIX, "other.pitr")
    results = check_wal(read_state(conninfo(wal.cluster, "postgres")), TARGET, utcnow(), 900,
                        elsewhere)
    found = {r.name: r for r in results}["wal_in_archive"]
    assert found.status == Level.CRITICAL and "BACKUP_WAL_TARGET" in found.hint


def test_a_server_that_does_not_archive_is_critical(pg_cluster: ClusterBase) -> None:
    results = check_wal(read_state(conninfo(pg_cluster, "postgres")), TARGET, utcnow(), 900)
    assert levels(results) == {"wal_archive_mode": Level.CRITICAL}
