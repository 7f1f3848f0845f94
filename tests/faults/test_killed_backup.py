"""The backup process itself is SIGKILLed mid-upload (the OOM killer, a node lost)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage, S3Storage, Storage
from amprenta_backup.core.storage.local import PARTIAL_SUFFIX
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.dataset import load_tables
from amprenta_backup.sandbox.s3server import MotoServer
from tests.faults.common import cleanup_later, s3_cli_env, uploaded_parts, uploads, wait_for
from tests.faults.conftest import FaultRow
from tests.faults.proxies import STALL, TcpProxy
from tests.integration.conftest import conninfo
from tests.support.cli import CliRunner, conn_uri, sigkill
from tests.support.process_group import children, members

PARALLEL = {"BACKUP_DUMP_JOBS": "2", "BACKUP_DUMP_MIN_TABLE_MB": "4"}


class Setup:
    """A CLI backup of ``pg_big`` into local or S3 storage, and how to see its partial data."""

    def __init__(self, kind: str, tmp_path: Path, moto: MotoServer, catalog: Catalog,
                 source: PgConnInfo, settings: dict[str, str] | None = None) -> None:
        self.kind = kind
        if kind == "s3":
            self.bucket = moto.create_bucket(f"faults-kill-{tmp_path.name[-12:].lower()}"
                                             .replace("_", "-"))
            self.client: Any = moto.client()
            self.storage: Storage = S3Storage(self.client, self.bucket)
            # the CLI reaches moto through a relay that freezes after the first 8 MiB part,
            # so the kill lands mid-upload however fast this machine finishes the dump
            self.proxy: TcpProxy | None = TcpProxy(urlsplit(moto.endpoint_url).port or 80)
            env = s3_cli_env(moto, self.bucket, catalog, source,
                             endpoint_url=f"http://127.0.0.1:{self.proxy.port}")
        else:
            self.proxy = None
            self.root = tmp_path / "backups"
            self.storage = LocalStorage(self.root)
            env = {"AIRFLOW_CONN_PG_BIG": conn_uri(source), "BACKUP_TARGETS": "pg_big",
                   "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn),
                   "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(self.root)}
        self.cli = CliRunner({**env, **(settings or {})})

    def partial_written(self) -> bool:
        """Some of the dump is stored, unfinished (a part, or 1 MiB of a .partial file)."""
        if self.kind == "s3":  # a part stored, or the relay froze with the upload begun
            return uploaded_parts(self.client, self.bucket) > 0 or bool(
                self.proxy is not None and self.proxy.mode == STALL
                and uploads(self.client, self.bucket))
        return any(p.stat().st_size > 2**20 for p in self.root.rglob(f"*{PARTIAL_SUFFIX}"))

    def partials(self) -> list[str]:
        return [u.key for u in self.storage.list_incomplete_uploads()]

    def kill_mid_upload(self) -> None:
        if self.proxy is not None:
            self.proxy.stall_after(8 * 2**20 + 2**19)  # part 1 and its headers pass
        proc = self.cli.start("backup", "pg_big")
        wait_for(self.partial_written, what="part of the dump to be stored")
        sigkill(proc)
        wait_for(lambda: not members(proc.pid), timeout=30, what="pg_dump to exit")
        if self.proxy is not None:
            self.proxy.resume()  # the endpoint answers again for the next run


@pytest.fixture(params=["local", "s3"])
def setup(request: pytest.FixtureRequest, tmp_path: Path, moto_server: MotoServer,
          catalog: Catalog, big_source_conn: PgConnInfo) -> Iterator[Setup]:
    made = Setup(request.param, tmp_path, moto_server, catalog, big_source_conn)
    try:
        yield made
    finally:
        if made.proxy is not None:
            made.proxy.close()


@pytest.fixture
def killed(setup: Setup, row: FaultRow) -> Setup:
    """``setup`` after its backup was killed mid-upload; the fault row names the setup."""
    row.fault = row.fault.format(setup=setup.kind)
    setup.kill_mid_upload()
    return setup


@pytest.mark.faults("SIGKILL of the backup process mid-upload ({setup})")
def test_a_killed_backup_is_never_offered_for_restore(
    killed: Setup, catalog: Catalog, row: FaultRow,
) -> None:
    row.saw("pg_dump exits with its parent (no orphan)")
    (record,) = catalog.find(target="pg_big")
    assert record.status == Status.RUNNING and record.manifest is None  # until abandoned
    keys = [o.key for o in killed.storage.list_objects() if "/pg_big/" in o.key]
    assert not [k for k in keys if k.endswith("manifest.json")], keys
    assert killed.partials() or keys  # an unfinished upload, or a dump whose manifest never came
    row.saw("no COMPLETED record, no manifest")
    refused = killed.cli("restore", "latest", "--from", "pg_big", "--database", "x",
                         "--dry-run")
    assert refused.returncode == 2, refused.stderr
    row.saw("`restore latest` refuses (exit 2)")
    done = killed.cli("backup", "pg_big")
    assert done.returncode == 0, done.stderr
    assert Status.COMPLETED in [r.status for r in catalog.find(target="pg_big")]
    row.saw("the next run COMPLETED")


@pytest.mark.faults("SIGKILL mid-upload ({setup}): record abandoned and partials removed")
def test_a_killed_backup_is_abandoned_and_its_partials_removed(
    killed: Setup, catalog: Catalog, row: FaultRow,
) -> None:
    report = cleanup_later(killed.storage, catalog)
    assert killed.partials() == [], report.summary()
    (record,) = catalog.find(target="pg_big")
    assert record.status == Status.FAILED and "abandoned" in (record.error or "")
    row.saw("cleanup two days later: FAILED (abandoned), partial upload removed")


@pytest.fixture(scope="module")
def two_sizeable_tables(pg_cluster: ClusterBase) -> Iterator[PgConnInfo]:
    """Two 16 MiB tables: a backup with :data:`PARALLEL` dumps them in two pg_dump streams."""
    load_tables(pg_cluster, "killparallel", [16, 16])
    try:
        yield conninfo(pg_cluster, "killparallel")
    finally:
        pg_cluster.drop_database("killparallel")


def _stored_bytes(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:  # a .partial renamed meanwhile
            pass
    return total


@pytest.mark.faults("SIGKILL of a parallel backup (2 pg_dump streams, local) mid-upload")
def test_a_killed_parallel_backup_is_never_offered_and_cleanup_removes_every_part(
    tmp_path: Path, moto_server: MotoServer, catalog: Catalog,
    two_sizeable_tables: PgConnInfo, row: FaultRow,
) -> None:
    setup = Setup("local", tmp_path, moto_server, catalog, two_sizeable_tables, PARALLEL)
    proc = setup.cli.start("backup", "pg_big")
    dumps = wait_for(lambda: found if len(found := children(proc.pid, "pg_dump")) == 2
                     else None, what="two pg_dump streams")
    wait_for(lambda: len(setup.partials()) == 2 and _stored_bytes(setup.root) > 2 * 2**20,
             what="both streams to store part of their objects")
    for pid in dumps:  # frozen mid-stream, so neither object can finish before the kill
        os.kill(pid, signal.SIGSTOP)
    proc.kill()
    proc.wait(timeout=30)
    for pid in dumps:
        os.kill(pid, signal.SIGCONT)
    proc.communicate(timeout=30)
    wait_for(lambda: not members(proc.pid), timeout=30, what="both pg_dump streams to exit")
    row.saw("both pg_dump streams exit with their parent (no orphan)")
    (record,) = catalog.find(target="pg_big")
    assert record.status == Status.RUNNING and record.manifest is None  # until abandoned
    partials = setup.partials()
    assert len(partials) == 2 and any("-data-01." in k for k in partials), partials
    assert [o.key for o in setup.storage.list_objects()] == []  # no part finished, no manifest
    row.saw("killed with both parts open: no COMPLETED record, no manifest")
    refused = setup.cli("restore", "latest", "--from", "pg_big", "--database", "x",
                        "--dry-run")
    assert refused.returncode == 2, refused.stderr
    row.saw("`restore latest` refuses (exit 2)")

    report = cleanup_later(setup.storage, catalog)
    abandoned = catalog.get(record.backup_id)
    assert abandoned is not None and abandoned.status == Status.FAILED
    assert (abandoned.error or "").startswith("abandoned: no heartbeat since "), abandoned.error
    assert list(setup.root.rglob("*")) == [], report.summary()  # no part, no empty folder
    row.saw("cleanup: FAILED (abandoned), both partial parts and their folders removed")
