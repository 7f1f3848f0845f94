"""Fault: the backup process SIGKILLed mid-upload (the OOM killer, a lost worker), local and S3.

The record stays RUNNING with no process behind it; once its heartbeat is older than
BACKUP_HEARTBEAT_TIMEOUT_SECONDS, ``health`` warns, and the next backup of the target (local)
or ``cleanup`` (S3) records it FAILED ("abandoned: no heartbeat since ...") and removes the
partial objects: the ``.partial`` file, the S3 multipart upload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage, S3Storage, Storage
from amprenta_backup.sandbox.s3server import MotoServer
from tests.faults.conftest import FaultRow
from tests.support.cli import CliRunner, conn_uri, sigkill

TIMEOUT = 10  # BACKUP_HEARTBEAT_TIMEOUT_SECONDS for the test (the default is 600)


def _settings(kind: str, storage: Storage, moto: MotoServer) -> dict[str, str]:
    if isinstance(storage, LocalStorage):
        return {"BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(storage.root)}
    assert isinstance(storage, S3Storage)
    return {"BACKUP_STORAGE_TYPE": "s3", "BACKUP_S3_BUCKET": storage.bucket,
            "BACKUP_S3_ENDPOINT_URL": moto.endpoint_url, "AWS_ACCESS_KEY_ID": moto.access_key,
            "AWS_SECRET_ACCESS_KEY": moto.secret_key}


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds} s")
        time.sleep(0.02)


@pytest.mark.faults("SIGKILL mid-upload ({storage_kind})")
@pytest.mark.parametrize("storage_kind", ["local", "s3"])
def test_a_backup_killed_mid_upload_is_abandoned_failed_and_swept(
    request: pytest.FixtureRequest, storage_kind: str, big_source_conn: PgConnInfo,
    catalog: Catalog, moto_server: MotoServer, row: FaultRow,
) -> None:
    storage: Storage = request.getfixturevalue(f"{storage_kind}_storage")
    cli = CliRunner({"AIRFLOW_CONN_PG_BIG": conn_uri(big_source_conn),
                     "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn),
                     "BACKUP_TARGETS": "pg_big",
                     "BACKUP_HEARTBEAT_TIMEOUT_SECONDS": str(TIMEOUT),
                     **_settings(storage_kind, storage, moto_server)})
    proc = cli.start("backup", "pg_big")
    _wait_for(lambda: bool(storage.list_incomplete_uploads()) or proc.poll() is not None,
              60, "no upload started")
    sigkill(proc)
    assert proc.returncode == -9, "the backup finished before it could be killed"
    (record,) = catalog.find(target="pg_big")
    assert record.status == Status.RUNNING and storage.list_incomplete_uploads()
    row.saw("killed with its upload open: record RUNNING")

    def warned() -> bool:
        health = json.loads(cli("health", "--json").stdout)
        return any(r["name"] == "abandoned_backup" and record.backup_id in r["detail"]
                   for r in health)
    _wait_for(warned, 3 * TIMEOUT, "health did not warn about the abandoned backup")
    row.saw("health warns (abandoned_backup)")

    if storage_kind == "local":
        done = cli("backup", "pg_big", "--json")
        assert done.returncode == 0, done.stderr
        step = "the next backup"
    else:
        done = cli("cleanup", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["abandoned"] == [record.backup_id]
        step = "cleanup"
    failed = catalog.get(record.backup_id)
    assert failed is not None and failed.status == Status.FAILED
    assert (failed.error or "").startswith("abandoned: no heartbeat since "), failed.error
    assert storage.list_incomplete_uploads() == []
    folder = record.location[len(storage.uri("")):].strip("/")
    assert list(storage.list_objects(folder + "/")) == []
    row.saw(f"{step} records it FAILED ('abandoned: no heartbeat since ...'), "
            "no partial object left")
