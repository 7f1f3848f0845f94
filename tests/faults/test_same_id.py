"""Fault: two runs of the same backup id at once (an Airflow retry while the first attempt
still runs), as two real ``amprenta-backup backup --backup-id`` processes."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.faults.common import local_cli, stored_matches_manifest, wait_for
from tests.faults.conftest import FaultRow
from tests.support.cli import CliRunner
from tests.support.process_group import children

REFUSED = "is being written by another run right now"


@pytest.fixture
def cli(big_source_conn: PgConnInfo, catalog: Catalog, local_storage: LocalStorage) -> CliRunner:
    return local_cli("pg_big", big_source_conn, catalog, local_storage.root)


@pytest.mark.faults("same backup id run twice at once")
def test_one_run_per_backup_id_and_a_completed_backup_is_never_rewritten(
    cli: CliRunner, catalog: Catalog, local_storage: LocalStorage, pg_cluster: ClusterBase,
    row: FaultRow,
) -> None:
    backup_id = layout.make_backup_id(datetime.now(UTC), "faults/same-id")
    runs = [cli.start("backup", "pg_big", "--backup-id", backup_id, "--json") for _ in (1, 2)]
    outcomes = [(proc.wait(timeout=300), *proc.communicate()) for proc in runs]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes in ([0, 0], [0, 2]), outcomes
    for code, _out, err in outcomes:
        assert code == 0 or (REFUSED in err and "Traceback" not in err), err
    (record,) = [r for r in catalog.find(target="pg_big") if r.backup_id == backup_id]
    assert record.status == Status.COMPLETED
    manifest = json.loads(next(out for code, out, _ in outcomes if code == 0))
    stored_matches_manifest(local_storage, manifest)
    row.saw(f"started together: exit codes {codes}, one COMPLETED record, the stored bytes "
            "match its manifest")

    later_id = layout.make_backup_id(datetime.now(UTC), "faults/same-id-2")
    first = cli.start("backup", "pg_big", "--backup-id", later_id, "--json")
    deadline = time.monotonic() + 60
    while not local_storage.list_incomplete_uploads() and first.poll() is None:
        assert time.monotonic() < deadline, "the first run never started its upload"
        time.sleep(0.02)
    # the .partial file is opened before pg_dump starts: on a loaded machine it can show first
    (dump,) = wait_for(lambda: children(first.pid, "pg_dump"), timeout=60, what="pg_dump")
    os.kill(dump, signal.SIGSTOP)  # a stalled dump keeps the first run going meanwhile
    try:
        second = cli("backup", "pg_big", "--backup-id", later_id)
    finally:
        os.kill(dump, signal.SIGCONT)
    assert second.returncode == 2 and REFUSED in second.stderr, second.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    row.saw("started while the first uploads: refused (exit 2), the first completes")

    key = Path(local_storage.root, json.loads(out)["key"])
    written = key.stat().st_mtime_ns
    again = cli("backup", "pg_big", "--backup-id", later_id, "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == json.loads(out)
    assert key.stat().st_mtime_ns == written
    stored_matches_manifest(local_storage, json.loads(out))
    row.saw("run again once completed: nothing rewritten")

    restored = cli("restore", later_id, "--database", "faults_same_id", timeout=600)
    try:
        assert restored.returncode == 0, restored.stderr
        assert_databases_equal(pg_cluster, "bigsrc", pg_cluster, "faults_same_id")
    finally:
        pg_cluster.drop_database("faults_same_id")
    row.saw("the backup restores")
