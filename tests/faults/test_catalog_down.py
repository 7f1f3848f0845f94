"""The catalog database is unreachable before a backup starts, or goes away during one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage
from tests.faults.common import wait_for
from tests.faults.conftest import FaultRow
from tests.faults.proxies import TcpProxy
from tests.support.cli import CliRunner, conn_uri


def _cli(source: PgConnInfo, catalog: Catalog, catalog_port: int, root: Path) -> CliRunner:
    via_proxy = PgConnInfo(host="127.0.0.1", port=catalog_port, user=catalog.conn.user,
                           dbname=catalog.conn.dbname, password=catalog.conn.password)
    return CliRunner({"AIRFLOW_CONN_PG_BIG": conn_uri(source), "BACKUP_TARGETS": "pg_big",
                      "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(via_proxy),
                      "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(root)})


@pytest.mark.faults("catalog down before the backup")
def test_catalog_down_before_is_refused_and_writes_nothing(
    big_source_conn: PgConnInfo, catalog: Catalog, tmp_path: Path, row: FaultRow,
) -> None:
    proxy = TcpProxy(catalog.conn.port)
    proxy.down()
    cli = _cli(big_source_conn, catalog, proxy.port, tmp_path / "b")
    done = cli("backup", "pg_big")
    assert done.returncode == 2, done.stderr
    assert "nothing was written" in done.stderr and "BACKUP_CATALOG_CONN_ID" in done.stderr
    assert "Traceback" not in done.stderr and (catalog.conn.password or "\0") not in done.stderr
    row.saw("exit 2: the catalog named, 'nothing was written', BACKUP_CATALOG_CONN_ID")
    assert list(LocalStorage(tmp_path / "b").list_objects()) == []
    assert catalog.find() == []
    row.saw("no object, no record")


@pytest.mark.faults("catalog goes down during a backup that succeeds")
def test_catalog_down_during_says_the_backup_was_stored(
    big_source_conn: PgConnInfo, catalog: Catalog, tmp_path: Path, row: FaultRow,
) -> None:
    proxy = TcpProxy(catalog.conn.port)
    root = tmp_path / "b"
    cli = _cli(big_source_conn, catalog, proxy.port, root)
    try:
        proc = cli.start("backup", "pg_big")
        wait_for(lambda: catalog.find(target="pg_big"), what="the RUNNING record")
        proxy.down()
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode == 1, err
        assert "Traceback" not in err
        assert "was stored (dump and manifest in" in err and "rebuild-catalog" in err
        row.saw("exit 1 saying the dump and manifest were stored, and how to record them")
        (record,) = catalog.find(target="pg_big")
        assert record.status == Status.RUNNING  # the final save could not reach the catalog
        proxy.resume()
        rebuilt = cli("rebuild-catalog", "--json")
        assert rebuilt.returncode == 0, rebuilt.stderr
        (record,) = catalog.find(target="pg_big")
        assert record.status == Status.COMPLETED and record.sha256
        restored = cli("verify", record.backup_id, "--json")
        assert restored.returncode == 0 and json.loads(restored.stdout)["ok"], restored.stderr
        row.saw("once it is back, rebuild-catalog records it COMPLETED and it verifies")
    finally:
        proxy.close()
