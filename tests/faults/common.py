"""What the fault rows share: the backup CLI against S3, waiting for uploads, later cleanup."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import utcnow
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.retention.cleanup import Cleanup, CleanupReport
from amprenta_backup.core.retention.policies import policies_from_config
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage import Storage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.s3server import MotoServer
from tests.support.cli import CliRunner, conn_uri


def local_cli(conn_id: str, source: PgConnInfo, catalog: Catalog, root: Path) -> CliRunner:
    """The CLI with one source connection ``conn_id``, ``catalog`` and local storage."""
    return CliRunner({f"AIRFLOW_CONN_{conn_id.upper()}": conn_uri(source),
                      "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn),
                      "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(root)})


def s3_cli_env(moto: MotoServer, bucket: str, catalog: Catalog, source: PgConnInfo,
               endpoint_url: str | None = None, stall_seconds: int = 10) -> dict[str, str]:
    """Settings of a CLI backup of ``source`` as target ``pg_big`` into ``bucket``."""
    return {"AIRFLOW_CONN_PG_BIG": conn_uri(source),
            "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn), "BACKUP_TARGETS": "pg_big",
            "BACKUP_STORAGE_TYPE": "s3", "BACKUP_S3_BUCKET": bucket,
            "BACKUP_S3_ENDPOINT_URL": endpoint_url or moto.endpoint_url,
            "BACKUP_S3_STALL_SECONDS": str(stall_seconds),
            "AWS_ACCESS_KEY_ID": moto.access_key, "AWS_SECRET_ACCESS_KEY": moto.secret_key,
            "AWS_DEFAULT_REGION": moto.region}


def wait_for(check: Callable[[], Any], timeout: float = 90, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def uploads(client: Any, bucket: str) -> list[dict[str, Any]]:
    """Unfinished multipart uploads in ``bucket``."""
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def uploaded_parts(client: Any, bucket: str) -> int:
    """Parts stored so far by the unfinished uploads of ``bucket`` (an upload that completes
    or is aborted between the two calls counts none)."""
    total = 0
    for upload in uploads(client, bucket):
        try:
            listed = client.list_parts(Bucket=bucket, Key=upload["Key"],
                                       UploadId=upload["UploadId"])
        except client.exceptions.NoSuchUpload:
            continue
        total += len(listed.get("Parts", []))
    return total


def objects(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def cleanup_later(storage: Storage, catalog: Catalog, days: int = 2) -> CleanupReport:
    """Weekly cleanup as it runs ``days`` from now (unfinished uploads are stale after 1)."""
    config = BackupConfig()
    return Cleanup(storage, catalog, policies_from_config(config), config.prefix).run(
        utcnow() + timedelta(days=days), deleted_by="faults")


def stored_matches_manifest(storage: Storage, manifest: dict[str, object]) -> None:
    """The bytes stored at the manifest's key are the ones it pins (sha256 and size)."""
    stored = storage.get_bytes(str(manifest["key"]))
    assert hashlib.sha256(stored).hexdigest() == manifest["sha256"]
    assert len(stored) == manifest["stored_bytes"]


def assert_counts_match(cluster: ClusterBase, dbname: str, counts: dict[str, int]) -> None:
    """Each table of ``counts`` holds exactly that many rows in ``dbname`` (counted here)."""
    assert counts, "the manifest holds no row counts"
    for table, want in counts.items():
        ((got,),) = cluster.query(f"SELECT count(*) FROM {table}", dbname)
        assert got == want, (table, got, want)
