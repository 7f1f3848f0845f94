"""The S3 endpoint fails under a running backup: answering 500s, hung, killed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import S3Storage
from amprenta_backup.sandbox.s3server import MotoServer
from tests.faults.common import (
    cleanup_later,
    objects,
    s3_cli_env,
    uploads,
    wait_for,
)
from tests.faults.conftest import FaultRow
from tests.faults.proxies import PARTS_500, S3FaultProxy, TcpProxy
from tests.support.cli import CliRunner

STALL = 10


def _fail_mid_upload(cli: CliRunner, client: Any, bucket: str, fault: Callable[[], None]
                     ) -> tuple[str, float]:
    """Start a backup, inject ``fault`` once its multipart upload has started; the backup's
    stderr and how long after the fault it exited (1, without a traceback)."""
    proc = cli.start("backup", "pg_big")
    wait_for(lambda: uploads(client, bucket), what="the multipart upload to start")
    fault()
    at = time.monotonic()
    _out, err = proc.communicate(timeout=240)
    took = time.monotonic() - at
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    return err, took


def _failed_record(catalog: Catalog) -> str:
    (record,) = catalog.find(target="pg_big")
    assert record.status == Status.FAILED, record
    assert "step 'upload'" in (record.error or ""), record.error
    return record.error or ""


@pytest.mark.faults("S3 endpoint answers 500 to every part upload")
def test_500s_fail_the_backup_and_leave_nothing(
    moto_server: MotoServer, catalog: Catalog, big_source_conn: PgConnInfo, row: FaultRow,
) -> None:
    bucket = moto_server.create_bucket("faults-500")
    with S3FaultProxy(moto_server.endpoint_url) as proxy:
        proxy.mode = PARTS_500
        cli = CliRunner(s3_cli_env(moto_server, bucket, catalog, big_source_conn,
                                   endpoint_url=proxy.endpoint_url))
        done = cli("backup", "pg_big")
        assert done.returncode == 1, done.stderr
        assert "InternalError" in done.stderr and "Traceback" not in done.stderr
        assert proxy.failed_parts >= 4  # retried (standard mode) before giving up
        row.saw(f"exit 1 after {proxy.failed_parts} tries of the part, error names the "
                "object and InternalError")
        _failed_record(catalog)
        client = moto_server.client()
        assert objects(client, bucket) == [] and uploads(client, bucket) == []
        row.saw("record FAILED, multipart upload aborted at once, no object")
        proxy.mode = "pass"
        again = cli("backup", "pg_big")
        assert again.returncode == 0, again.stderr
        assert len([k for k in objects(client, bucket) if "/pg_big/" in k]) == 2
        row.saw("the next run COMPLETED")


@pytest.mark.faults("S3 endpoint hung mid-upload (TCP proxy accepts, then relays nothing)")
def test_a_hung_endpoint_fails_within_the_stall_bound(
    own_moto: MotoServer, catalog: Catalog, big_source_conn: PgConnInfo, row: FaultRow,
) -> None:
    bucket = own_moto.create_bucket("faults-hung")
    proxy = TcpProxy(own_moto.port)
    client = own_moto.client()
    try:
        cli = CliRunner(s3_cli_env(own_moto, bucket, catalog, big_source_conn,
                                   endpoint_url=f"http://127.0.0.1:{proxy.port}",
                                   stall_seconds=STALL))
        err, took = _fail_mid_upload(cli, client, bucket, proxy.stall)
        assert took < STALL + min(30, STALL) + 15, took  # stall bound + abort bound + start-up
        assert "127.0.0.1" in err
        row.saw(f"exit 1 {took:.0f} s after the endpoint froze (BACKUP_S3_STALL_SECONDS="
                f"{STALL}; default 120 s)")
        _failed_record(catalog)
        row.saw("record FAILED at 'upload'")
        proxy.down()  # drop what the frozen relay still holds, then answer again
        proxy.resume()
        left = uploads(client, bucket)
        assert left, "the abort cannot have reached a frozen endpoint"
        storage = S3Storage(client, bucket)
        report = cleanup_later(storage, catalog)
        assert sorted(report.aborted_uploads) == sorted(u["Key"] for u in left)
        assert uploads(client, bucket) == [] and objects(client, bucket) == []
        row.saw(f"{len(left)} unfinished upload(s) aborted by the next weekly cleanup")
    finally:
        proxy.close()


@pytest.mark.faults("S3 endpoint killed (SIGKILL) mid-upload")
def test_a_killed_endpoint_fails_the_backup(
    own_moto: MotoServer, catalog: Catalog, big_source_conn: PgConnInfo, row: FaultRow,
) -> None:
    bucket = own_moto.create_bucket("faults-killed")
    client = own_moto.client()
    cli = CliRunner(s3_cli_env(own_moto, bucket, catalog, big_source_conn, stall_seconds=STALL))
    err, took = _fail_mid_upload(cli, client, bucket, own_moto.kill)
    assert own_moto.endpoint_url in err
    row.saw(f"exit 1 {took:.0f} s after the kill, naming the endpoint")
    _failed_record(catalog)
    row.saw("record FAILED at 'upload'; nothing is offered for restore")
    assert not catalog.find(statuses=[Status.COMPLETED])


def test_the_proxies_relay_when_no_fault_is_injected(
    moto_server: MotoServer, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    """The control: the same backup through both relays completes."""
    bucket = moto_server.create_bucket("faults-relay")
    http_proxy = S3FaultProxy(moto_server.endpoint_url)
    tcp_proxy = TcpProxy(http_proxy.port)
    try:
        cli = CliRunner(s3_cli_env(moto_server, bucket, catalog, source_conn,
                                   endpoint_url=f"http://127.0.0.1:{tcp_proxy.port}"))
        done = cli("backup", "pg_big")
        assert done.returncode == 0, done.stderr
        assert http_proxy.relayed > 0 and tcp_proxy.seen > 0
    finally:
        tcp_proxy.close()
        http_proxy.close()


@pytest.mark.faults("S3 bucket missing (deleted, or a typo in BACKUP_S3_BUCKET)")
def test_a_missing_bucket_is_refused_before_anything_is_written(
    moto_server: MotoServer, catalog: Catalog, source_conn: PgConnInfo, row: FaultRow,
) -> None:
    cli = CliRunner(s3_cli_env(moto_server, "faults-no-such-bucket", catalog, source_conn))
    done = cli("backup", "pg_big")
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "bucket 'faults-no-such-bucket' does not exist at" in done.stderr, done.stderr
    assert "BACKUP_S3_BUCKET" in done.stderr and "Traceback" not in done.stderr
    row.saw("exit 2 naming the bucket and BACKUP_S3_BUCKET, no traceback")
    assert catalog.find() == []
    assert "faults-no-such-bucket" not in [
        b["Name"] for b in moto_server.client().list_buckets()["Buckets"]]
    row.saw("no record, no bucket created")
