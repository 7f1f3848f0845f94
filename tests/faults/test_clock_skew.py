"""Fault: workers whose clocks are far off (Debian's ``faketime`` around the CLI process).

Backups taken by a worker 400 days slow and by one 365 days fast, then ``cleanup`` and
``health`` run on such workers: every time comes from the catalog server, so no fresh backup
is deletable and none becomes "the newest" for a year; the skewed worker is warned about.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from tests.faults.conftest import FaultRow
from tests.support.cli import CliRunner, conn_uri

SLOW, FAST = "-400d", "+365d"


def _faketime(offset: str) -> dict[str, str]:
    """The environment ``faketime -f OFFSET`` would give (LD_PRELOAD of libfaketime)."""
    return {"FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "LD_PRELOAD": _libfaketime()}


def _libfaketime() -> str:
    for path in Path("/usr/lib").glob("*/faketime/libfaketime.so.1"):
        return str(path)
    pytest.skip("libfaketime not found: install Debian's faketime (apt-get install -y faketime;"
                " scripts/bootstrap.sh does when run as root)")


@pytest.fixture
def cli(source_conn: PgConnInfo, catalog: Catalog, tmp_path: Path) -> CliRunner:
    if shutil.which("faketime") is None:
        pytest.skip("faketime is not installed: apt-get install -y faketime (scripts/"
                    "bootstrap.sh installs it when run as root)")
    return CliRunner({"AIRFLOW_CONN_PG_SOURCE": conn_uri(source_conn),
                      "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn),
                      "BACKUP_TARGETS": "pg_source", "BACKUP_STORAGE_TYPE": "local",
                      "BACKUP_LOCAL_PATH": str(tmp_path / "b")})


@pytest.mark.faults("clock skew: workers 400 days slow and 365 days fast")
def test_skewed_workers_delete_no_fresh_backup_and_are_warned_about(
    cli: CliRunner, catalog: Catalog, row: FaultRow,
) -> None:
    fake_year = cli("backup", "pg_source", "--json", extra=_faketime(FAST))
    assert fake_year.returncode == 0, fake_year.stderr
    assert json.loads(fake_year.stdout)["backup_id"].startswith(str(catalog.now().year))
    ids = [json.loads(fake_year.stdout)["backup_id"]]
    for extra in (_faketime(SLOW), {}):
        done = cli("backup", "pg_source", "--json", extra=extra)
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout)["backup_id"])
    now = catalog.now()
    for backup_id in ids:
        record = catalog.get(backup_id)
        assert record is not None and record.status == Status.COMPLETED
        assert abs(record.started_at - now) < timedelta(minutes=5), record.started_at
    row.saw("backups taken on skewed workers are dated by the catalog server")

    for offset, words in ((SLOW, "400 days, "), (FAST, "365 days, ")):
        cleanup = cli("cleanup", "--json", extra=_faketime(offset))
        assert cleanup.returncode == 0, cleanup.stderr
        report = json.loads(cleanup.stdout)
        assert report["removed_count"] == 0, report["removed"]
        assert f"this worker's clock is {words}" in cleanup.stderr, cleanup.stderr
    assert [r.status for r in catalog.find()] == [Status.COMPLETED] * 3
    row.saw("cleanup 400 days slow and 365 days fast: nothing deleted, skew logged")

    health = cli("health", "--json", extra=_faketime(FAST))
    results = {r["name"]: r for r in json.loads(health.stdout) if r["target"] is None
               or r["name"] == "latest_backup_age"}
    assert results["worker_clock"]["status"] == "warning"
    assert "365 days, " in results["worker_clock"]["detail"]
    assert results["latest_backup_age"]["status"] == "ok"  # not "365 days old"
    normal = json.loads(cli("health", "--json").stdout)
    assert [r["status"] for r in normal if r["name"] == "worker_clock"] == ["ok"]
    row.saw("health warns about the skewed worker (worker_clock), and only about it")
