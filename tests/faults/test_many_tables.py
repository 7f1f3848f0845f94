"""Fault: 10,000 tables on a server with the default lock table (max_locks_per_transaction 64).

Plain ``pg_dump -Fc`` works there, so our backup must too: the row counter may not hold a
lock on every table until the dump ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amprenta_backup.core.pgtools import tool
from amprenta_backup.sandbox.cluster import ThrowawayCluster
from tests.faults.conftest import FaultRow
from tests.integration.conftest import conninfo
from tests.support.cli import CliRunner, conn_uri

TABLES = 10_000
# the tables in between have a key and no text column: the same locks as t1 and the last
# (a table and its index, which a count(*) locks too), no TOAST table and index each to create,
# dump, restore and remove; only the first and the last have rows
CREATE = """DO $$ BEGIN
  FOR i IN {first}..{last} LOOP
    EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY)', i);
  END LOOP;
END $$"""


@pytest.fixture(scope="module")
def many_tables(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayCluster]:
    """A default-configured cluster whose database ``many`` has 10,000 tables."""
    with ThrowawayCluster() as cluster:
        assert cluster.query("SHOW max_locks_per_transaction") == [("64",)]
        cluster.create_database("many")
        cluster.create_database("catalog")
        cluster.execute(f"CREATE TABLE t1 (id int PRIMARY KEY, v text); CREATE TABLE t{TABLES} "
                        "(id int PRIMARY KEY, v text)", "many")
        for first in range(2, TABLES, 1000):  # one DO block cannot lock 10,000 tables either
            cluster.execute(CREATE.format(first=first, last=min(first + 999, TABLES - 1)),
                            "many")
        cluster.execute("INSERT INTO t1 SELECT g, 'x' FROM generate_series(1, 250) g;"
                        f"INSERT INTO t{TABLES} VALUES (1, 'last')", "many")
        yield cluster


@pytest.mark.faults("10,000 tables, default max_locks_per_transaction")
def test_backup_of_10000_tables_completes_and_restores(
    many_tables: ThrowawayCluster, tmp_path: Path, row: FaultRow,
) -> None:
    started = time.monotonic()
    plain = subprocess.run([tool("pg_dump"), "-Fc", "-f", str(tmp_path / "plain.pgc")],
                           env={"PATH": os.environ["PATH"], **many_tables.env("many")},
                           capture_output=True, text=True, timeout=600)
    plain_seconds = time.monotonic() - started
    assert plain.returncode == 0, plain.stderr  # the premise: plain pg_dump works here

    cli = CliRunner({"AIRFLOW_CONN_PG_SOURCE": conn_uri(conninfo(many_tables, "many")),
                     "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(conninfo(many_tables, "catalog")),
                     "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path / "b")})
    started = time.monotonic()
    done = cli("backup", "pg_source", "--json", timeout=600)
    ours_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert len(manifest["table_counts"]) == TABLES
    assert manifest["table_counts"]["public.t1"] == 250
    assert manifest["table_counts"][f"public.t{TABLES}"] == 1
    shown = json.loads(cli("show", manifest["backup_id"], "--json").stdout)
    assert shown["status"] == "completed"
    row.saw(f"backup COMPLETED with {TABLES} row counts ({ours_seconds:.1f} s; plain pg_dump "
            f"{plain_seconds:.1f} s)")

    restored = cli("restore", manifest["backup_id"], "--database", "many_restored",
                       "--json", timeout=900)
    assert restored.returncode == 0, restored.stderr
    assert many_tables.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                             "many_restored") == [(TABLES,)]
    assert many_tables.query("SELECT count(*) FROM t1", "many_restored") == [(250,)]
    row.saw("restores: 10,000 tables, row counts match")
