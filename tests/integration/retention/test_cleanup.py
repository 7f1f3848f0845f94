"""Cleanup against real storage (moto's S3 server, a local folder) and a real catalog."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import BackupRecord, Status, utcnow
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.retention.cleanup import Cleanup
from amprenta_backup.core.retention.policies import AgePolicy, KeepLastPolicy
from amprenta_backup.core.storage import LocalStorage, S3Storage, Storage
from amprenta_backup.sandbox.s3server import MotoServer
from tests.support.stored_backups import stored_backup

PREFIX = "database"
POLICIES = [AgePolicy(7), KeepLastPolicy(2)]
NOW = utcnow() + timedelta(days=2)  # objects written now are two days old by then


def stored(storage: Storage, catalog: Catalog, target: str, days: float,
           status: Status = Status.COMPLETED, size: int = 1000,
           manifest: bool = True) -> BackupRecord:
    return stored_backup(storage, catalog, target, NOW - timedelta(days=days), status, size,
                         manifest, PREFIX)


def keys(storage: Storage, prefix: str = "") -> set[str]:
    return {o.key for o in storage.list_objects(prefix)}


def folder_keys(storage: Storage, record: BackupRecord) -> set[str]:
    folder = layout.backup_folder(PREFIX, record.target, record.backup_id)
    return keys(storage, folder + "/")


@pytest.fixture
def locked_bucket(moto_server: MotoServer) -> S3Storage:
    """A bucket with S3 Object Lock enabled, on the session's moto server."""
    client = moto_server.client()
    name = f"lock-{os.urandom(4).hex()}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return S3Storage(client, name)


def test_cleanup_on_s3_removes_exactly_the_planned_backups_and_keeps_the_rest(
    locked_bucket: S3Storage, catalog: Catalog,
) -> None:
    s3 = locked_bucket
    young = [stored(s3, catalog, "pg_a", d) for d in (1, 2, 3)]
    expired = [stored(s3, catalog, "pg_a", d) for d in (8, 9, 10)]
    locked = stored(s3, catalog, "pg_a", 20)
    verified = stored(s3, catalog, "pg_a", 30, Status.VERIFIED)
    failed = stored(s3, catalog, "pg_a", 40, Status.FAILED)
    running = stored(s3, catalog, "pg_a", 9.5, Status.RUNNING)
    with catalog.cursor() as cur:  # still running at NOW: its heartbeat is fresh then
        cur.execute("UPDATE backup_records SET heartbeat_at = %s WHERE id = %s",
                    (NOW, running.backup_id))
    last_b, second_b = stored(s3, catalog, "pg_b", 100), stored(s3, catalog, "pg_b", 200)
    old_b = stored(s3, catalog, "pg_b", 300)
    no_manifest = stored(s3, catalog, "pg_c", 5, manifest=False)
    until = NOW + timedelta(days=10)
    for key in folder_keys(s3, locked):
        s3.client.put_object_retention(Bucket=s3.bucket, Key=key, Retention={
            "Mode": "GOVERNANCE", "RetainUntilDate": until})
    orphan = f"{PREFIX}/pg_a/2026/01/02/20260102T010000Z-0000beef/dump.pgc.zst"
    s3.put_bytes(orphan, b"x" * 300)
    s3.put_bytes(f"{PREFIX}/notes.txt", b"not a backup")
    stale = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=f"{PREFIX}/pg_a/x/dump")
    elsewhere = s3.client.create_multipart_upload(Bucket=s3.bucket, Key="wal/000000010000")
    still_running = s3.client.create_multipart_upload(  # a backup running for over a day
        Bucket=s3.bucket, Key=layout.dump_key(layout.backup_folder(
            PREFIX, "pg_a", running.backup_id), compressed=True))
    before = keys(s3)
    doomed = [*expired, failed, old_b]
    doomed_keys = set().union(*(folder_keys(s3, r) for r in doomed))
    cleanup = Cleanup(s3, catalog, POLICIES, PREFIX)

    dry = cleanup.run(NOW, deleted_by="test:dry", dry_run=True)
    assert sorted(dry.removed) == sorted(r.backup_id for r in doomed)
    assert dry.bytes_freed == sum(o.size for o in s3.list_objects() if o.key in doomed_keys)
    assert keys(s3) == before and len(s3.list_incomplete_uploads()) == 3
    assert {r.backup_id: r.status for r in catalog.find()}[expired[0].backup_id] \
        == Status.COMPLETED

    report = cleanup.run(NOW, deleted_by="test:cleanup")
    assert report.errors == [] and sorted(report.removed) == sorted(dry.removed)
    assert report.bytes_freed == dry.bytes_freed
    assert keys(s3) == before - doomed_keys - {orphan}
    assert report.leftovers_removed == [orphan] and report.leftover_bytes == 300
    assert report.aborted_uploads == [f"{PREFIX}/pg_a/x/dump"]
    assert sorted(u.upload_id for u in s3.list_incomplete_uploads()) == sorted(
        [elsewhere["UploadId"], still_running["UploadId"]])
    assert stale["UploadId"] not in {u.upload_id for u in s3.list_incomplete_uploads()}
    folder_c = layout.backup_folder(PREFIX, "pg_c", no_manifest.backup_id)
    assert report.missing_manifests == [folder_c]

    statuses = {r.backup_id: r.status for r in catalog.find()}
    assert {i for i, s in statuses.items() if s == Status.DELETED} == {r.backup_id for r in doomed}
    for record in [*young, locked, verified, running, last_b, second_b, no_manifest]:
        assert statuses[record.backup_id] == record.status
    reasons = {d.record.backup_id: d.reason for d in report.plan.kept}
    assert reasons[locked.backup_id] == f"under S3 Object Lock until {until:%Y-%m-%d %H:%M}"
    assert reasons[verified.backup_id] == "newest verified backup of pg_a"
    assert reasons[last_b.backup_id] == "newest completed backup of pg_b"
    assert reasons[second_b.backup_id] == "among the newest 2"
    assert reasons[running.backup_id].startswith("running")
    with catalog.cursor() as cur:
        cur.execute("SELECT deleted_at, deleted_by, delete_reason FROM backup_records "
                    "WHERE id = %s", (old_b.backup_id,))
        audit = cur.fetchone()
    assert audit == {"deleted_at": NOW, "deleted_by": "test:cleanup",
                     "delete_reason": "older than 7 days; not among the newest 2"}

    after = keys(s3)
    again = cleanup.run(NOW, deleted_by="test:again")
    assert again.removed == [] and again.leftovers_removed == [] and keys(s3) == after


def test_local_leftovers_older_than_a_day_go_and_fresh_ones_stay(
    local_storage: LocalStorage, catalog: Catalog,
) -> None:
    now = utcnow()
    root = local_storage.root

    def aged(rel: str, hours: float) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"z" * 100)
        stamp = (now - timedelta(hours=hours)).timestamp()
        os.utime(path, (stamp, stamp))
        return path

    old_partial = aged(f"{PREFIX}/pg_a/2026/03/01/x/dump.pgc.zst.1a2b3c4d.partial", 30)
    new_partial = aged(f"{PREFIX}/pg_a/2026/03/02/y/dump.pgc.zst.5e6f7a8b.partial", 2)
    old_orphan = aged(f"{PREFIX}/pg_a/2026/03/01/20260301T010000Z-0000aaaa/dump.pgc.zst", 30)
    new_orphan = aged(f"{PREFIX}/pg_a/2026/03/02/20260302T010000Z-0000bbbb/dump.pgc.zst", 2)
    report = Cleanup(local_storage, catalog, POLICIES, PREFIX).run(now, deleted_by="test")
    assert not old_partial.exists() and new_partial.exists()
    assert not old_orphan.exists() and new_orphan.exists()
    assert not old_orphan.parent.exists()  # empty folders go with their objects
    assert report.aborted_uploads == [old_partial.relative_to(root).as_posix()]
    assert report.leftovers_removed == [old_orphan.relative_to(root).as_posix()]


def test_a_record_outside_the_storage_is_reported_and_left_alone(
    local_storage: LocalStorage, catalog: Catalog,
) -> None:
    kept = [stored(local_storage, catalog, "pg_a", d) for d in (1, 2)]
    foreign = stored(local_storage, catalog, "pg_a", 90)
    foreign.location = "s3://another-bucket/database/pg_a/x"
    catalog.save(foreign)
    report = Cleanup(local_storage, catalog, POLICIES, PREFIX).run(NOW, deleted_by="test")
    assert [d.record.backup_id for d in report.plan.to_delete] == [foreign.backup_id]
    assert report.removed == [] and len(report.errors) == 1
    assert "s3://another-bucket" in report.errors[0] and "left as it is" in report.errors[0]
    assert {r.backup_id: r.status for r in catalog.find()} == {
        r.backup_id: Status.COMPLETED for r in [*kept, foreign]}
    assert folder_keys(local_storage, foreign)


def test_cli_cleanup_dry_run_prints_the_plan_and_deletes_nothing(
    tmp_path: Path, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    storage = LocalStorage(tmp_path / "b")
    expired = stored(storage, catalog, "pg_a", 400)
    newest = stored(storage, catalog, "pg_a", 390)
    conn = catalog.conn
    env = {"PATH": os.environ["PATH"], "BACKUP_STORAGE_TYPE": "local",
           "BACKUP_LOCAL_PATH": str(storage.root), "BACKUP_RETENTION_DAYS": "30",
           "AIRFLOW_CONN_BACKUP_CATALOG": f"postgresql://{conn.user}:"
           f"{quote(conn.password or '', safe='')}@{conn.host}:{conn.port}/{conn.dbname}"}
    before = keys(storage)
    done = subprocess.run([sys.executable, "-m", "amprenta_backup.cli", "cleanup", "--dry-run"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"DELETE {expired.backup_id}" in done.stdout
    assert f"KEEP   {newest.backup_id}" in done.stdout
    assert "would remove 1 backups" in done.stdout
    assert keys(storage) == before
    assert {r.status for r in catalog.find()} == {Status.COMPLETED}
    assert (source_conn.password or "\0") not in done.stdout + done.stderr


def test_the_report_gives_the_figures(local_storage: LocalStorage, catalog: Catalog) -> None:
    stored(local_storage, catalog, "pg_a", 1, size=10)
    gone = stored(local_storage, catalog, "pg_a", 100, size=20)
    size = sum(o.size for o in local_storage.list_objects() if gone.backup_id in o.key)
    report = Cleanup(local_storage, catalog, [AgePolicy(30)], PREFIX).run(NOW, deleted_by="t")
    assert report.removed == [gone.backup_id] and report.bytes_freed == size > 20
    assert report.summary().startswith(f"removed 1 backups ({size} bytes)")
    assert "kept 1 (1 newest completed backup)" in report.summary()
    figures = report.to_dict()
    assert figures["kept_reasons"] == {"newest completed backup": 1}
    assert figures["removed_count"] == 1 and "plan" not in figures
    assert len(report.to_dict(with_plan=True)["plan"]["decisions"]) == 2
