"""The spec's three metrics over a real catalog, from Python and from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, timedelta
from urllib.parse import quote

import pytest

from amprenta_backup.core import layout, metrics
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import BackupRecord, Status, utcnow

NOW = utcnow()


def add(catalog: Catalog, days: float, status: Status, size: int = 0, minutes: float = 0.0,
        target: str = "pg_main", error: str | None = None) -> BackupRecord:
    started = NOW - timedelta(days=days)
    record = BackupRecord(
        backup_id=layout.make_backup_id(started, f"{target}{days}{status}"), target=target,
        status=status, location="file:///b", started_at=started, stored_bytes=size or None,
        completed_at=None if status == Status.RUNNING else started + timedelta(minutes=minutes),
        error=error)
    catalog.save(record)
    return record


@pytest.fixture
def history(catalog: Catalog) -> list[BackupRecord]:
    """Five weeks of backups: successes, failures, one running, some deleted by retention."""
    return [
        add(catalog, 0.2, Status.COMPLETED, 1000, 2), add(catalog, 1.2, Status.VERIFIED, 3000, 4),
        add(catalog, 2.2, Status.FAILED, error="step 'dump' failed"),
        add(catalog, 0.1, Status.RUNNING),
        add(catalog, 3.2, Status.COMPLETED, 2000, 6, target="pg_other"),
        add(catalog, 10, Status.DELETED, 5000, 10),
        add(catalog, 12, Status.DELETED, error="step 'connect' failed"),
        add(catalog, 20, Status.CORRUPT, 4000, 3),
        add(catalog, 40, Status.COMPLETED, 9000, 9), add(catalog, 45, Status.FAILED, error="x"),
    ]


def test_success_rate_counts_finished_backups_of_the_last_30_days(
    catalog: Catalog, history: list[BackupRecord],
) -> None:
    rate = metrics.success_rate(catalog, now=NOW)
    # finished in 30 days: 4 succeeded (2 completed, 1 verified, 1 deleted after success);
    # 3 did not (a failure, a deleted failure, a corrupt one); the running one is not counted
    assert rate == {"days": 30, "total": 7, "succeeded": 4, "failed": 3, "success_rate": 57.14}
    assert metrics.success_rate(catalog, days=7, now=NOW, target="pg_main")["success_rate"] \
        == 66.67
    assert metrics.success_rate(catalog, now=NOW - timedelta(days=400))["success_rate"] is None


def test_average_size_and_duration_cover_successful_backups_of_the_last_7_days(
    catalog: Catalog, history: list[BackupRecord],
) -> None:
    figures = metrics.size_duration(catalog, now=NOW)
    assert figures["backups"] == 3
    assert figures["avg_size_bytes"] == pytest.approx(2000)
    assert figures["avg_duration_seconds"] == pytest.approx(4 * 60)


def test_storage_trend_sums_bytes_per_day_newest_first(
    catalog: Catalog, history: list[BackupRecord],
) -> None:
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in history:
        if r.status in (Status.COMPLETED, Status.VERIFIED) or (
                r.status == Status.DELETED and r.error is None):
            if r.started_at > NOW - timedelta(days=30):
                day = expected[r.started_at.astimezone(UTC).date().isoformat()]
                day[0] += 1
                day[1] += r.stored_bytes or 0
    trend = metrics.storage_trend(catalog, now=NOW)
    assert [(t["backup_date"], t["backups"], t["total_size"]) for t in trend] == [
        (day, n, size) for day, (n, size) in sorted(expected.items(), reverse=True)]
    assert sum(t["total_size"] for t in trend) == 1000 + 3000 + 2000 + 5000


def test_cli_prints_each_metric(catalog: Catalog, history: list[BackupRecord]) -> None:
    conn = catalog.conn
    env = {"PATH": os.environ["PATH"],
           "AIRFLOW_CONN_BACKUP_CATALOG": f"postgresql://{conn.user}:"
           f"{quote(conn.password or '', safe='')}@{conn.host}:{conn.port}/{conn.dbname}"}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "amprenta_backup.cli", "metrics", *args],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert json.loads(cli("success-rate", "--json"))["success_rate"] == 57.14
    assert cli("success-rate").startswith("success rate over 30 days: 57.14% (4 of 7 finished")
    assert "3 successful backups, average size 2.0 KiB, average duration 240.0 s" in cli(
        "size-duration")
    trend = json.loads(cli("storage-trend", "--json", "--days", "7"))
    assert sum(t["total_size"] for t in trend) == 6000
    assert "DATE (UTC)" in cli("storage-trend")
