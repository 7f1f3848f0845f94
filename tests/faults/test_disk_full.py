"""Disk full, for real: a 20 MiB tmpfs (or RLIMIT_FSIZE in the child where not root)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from tests.faults.conftest import FaultRow
from tests.faults.disks import SmallDisk
from tests.support.cli import CliRunner, conn_uri


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    root = tmp_path / "disk"
    root.mkdir()
    small = SmallDisk(root)
    try:
        yield small
    finally:
        small.unmount()


@pytest.fixture
def cli(disk: SmallDisk, big_source_conn: PgConnInfo, catalog: Catalog) -> CliRunner:
    return CliRunner({"AIRFLOW_CONN_PG_BIG": conn_uri(big_source_conn),
                      "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn),
                      "BACKUP_TARGETS": "pg_big", "BACKUP_STORAGE_TYPE": "local",
                      "BACKUP_LOCAL_PATH": str(disk.root / "backups")})


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


@pytest.mark.faults("disk full mid-dump (local, {0})")
def test_disk_full_fails_cleanly_and_the_next_run_succeeds(
    disk: SmallDisk, cli: CliRunner, catalog: Catalog, row: FaultRow,
) -> None:
    row.fault = row.fault.format(disk.kind)
    (disk.root / "backups").mkdir()
    disk.fill(leave=2 * 1024 * 1024)  # the 40 MiB database's dump needs far more
    failed = cli("backup", "pg_big", preexec=disk.preexec())
    assert failed.returncode == 1, failed.stderr
    _no_traceback(failed.stderr)
    assert "No space left on device" in failed.stderr or "too large" in failed.stderr
    assert str(disk.root / "backups") in failed.stderr and "free" in failed.stderr
    row.saw("exit 1, error names the file and the free space, no traceback")
    (record,) = catalog.find(target="pg_big")
    assert record.status == Status.FAILED and "step 'upload'" in (record.error or "")
    row.saw("record FAILED at 'upload'")
    assert disk.files() == [] and disk.folders() == ["backups"]
    row.saw("no .partial file, no empty folder")

    disk.free_up()
    done = cli("backup", "pg_big", "--json")
    assert done.returncode == 0, done.stderr
    backup_id = json.loads(done.stdout)["backup_id"]
    assert [r.status for r in catalog.find(target="pg_big")] == [Status.COMPLETED, Status.FAILED]
    own = [f for f in disk.files() if "/_globals/" not in f]
    assert all(backup_id in f for f in own) and len(own) == 2
    assert len(disk.files()) == 4  # and the server's globals (sql + info), taken after the dump
    row.saw("the next run COMPLETED with only its own dump, manifest and globals")


@pytest.mark.faults("disk full at the final flush: health probe (local, {0})")
def test_health_probe_on_a_full_disk_is_critical_and_leaves_nothing(
    disk: SmallDisk, cli: CliRunner, row: FaultRow,
) -> None:
    row.fault = row.fault.format(disk.kind)
    (disk.root / "backups").mkdir()
    disk.fill(leave=0)  # the probe's 2 bytes fit in the write buffer: only the flush fails
    done = cli("health", "--json", preexec=disk.preexec())
    assert done.returncode == 1, done.stderr
    _no_traceback(done.stderr)
    checks = {c["name"]: c for c in json.loads(done.stdout) if not c.get("target")}
    storage = checks["storage_writable"]
    assert storage["status"] == "critical", storage
    assert ".amprenta-probe" in storage["detail"] and "free" in storage["detail"]
    row.saw("health exits 1: storage_writable critical, names the probe file and free space")
    assert disk.files() == []
    row.saw("no .amprenta-probe.*.partial left")


def test_a_disk_that_is_not_full_is_not_reported(disk: SmallDisk, cli: CliRunner) -> None:
    """The control: the same probe on the same disk with room passes."""
    (disk.root / "backups").mkdir()
    done = cli("health", "--json", preexec=disk.preexec())
    checks = {c["name"]: c for c in json.loads(done.stdout) if not c.get("target")}
    assert checks["storage_writable"]["status"] == "ok", checks
    assert disk.files() == []


