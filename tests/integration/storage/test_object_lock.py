"""Immutable backups: S3 Object Lock on every object, on moto's S3 server over HTTP.

moto keeps the retain-until date of PutObject and enforces it on a delete of a version
(with its own clock, like S3), so a short lock period shows a delete refused before the
date and done after it. moto drops the lock headers of CreateMultipartUpload; what the
client sends there is checked on the request itself (a botocore event hook).
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.copy.records import CopyStatus
from amprenta_backup.core.errors import ObjectLocked, StorageNotReady
from amprenta_backup.core.models import RunContext, Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pipeline import Compression
from amprenta_backup.core.retention.cleanup import Cleanup
from amprenta_backup.core.retention.policies import AgePolicy
from amprenta_backup.core.settings import BackupConfig, CopySettings, CopyStorageConfig
from amprenta_backup.core.storage import LocalStorage, S3Storage
from amprenta_backup.core.storage.factory import storage_from_config
from amprenta_backup.core.storage.multipart import MIB
from amprenta_backup.core.storage.objectlock import ObjectLock
from amprenta_backup.core.wal.settings import write_config_file
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.s3server import MotoServer
from amprenta_backup.sandbox.serverenv import wal_command
from tests.support.backups import engine_for
from tests.support.stored_backups import stored_backup
from tests.support.wal import a_wal_segment, wal_settings

PERIOD = timedelta(seconds=4)
LOCK = ObjectLock("governance", PERIOD)
SLACK = timedelta(seconds=1)  # moto keeps whole seconds
SETTINGS = BackupSettings(prefix="database/", compression=Compression())


def _bucket(moto_server: MotoServer, lock_enabled: bool) -> tuple[Any, str]:
    client = moto_server.client()
    name = f"worm-{os.urandom(4).hex()}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock_enabled)
    return client, name


def _versions(storage: S3Storage, prefix: str) -> list[str]:
    resp = storage.client.list_object_versions(Bucket=storage.bucket, Prefix=prefix)
    return [v["Key"] for v in (*resp.get("Versions", []), *resp.get("DeleteMarkers", []))]


def test_a_bucket_without_object_lock_is_refused_before_anything_is_written(
    moto_server: MotoServer, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    client, name = _bucket(moto_server, lock_enabled=False)
    storage = S3Storage(client, name, object_lock=LOCK)
    with pytest.raises(StorageNotReady) as err:
        BackupRunner(storage, catalog, SETTINGS).run(
            "pg_lock", source_conn, RunContext(), layout.make_backup_id(datetime.now(UTC), "x"))
    message = str(err.value)
    assert f"bucket {name!r}" in message and "has no Object Lock enabled" in message
    assert "put-object-lock-configuration" in message and "BACKUP_OBJECT_LOCK_MODE" in message
    assert client.list_objects_v2(Bucket=name).get("KeyCount") == 0
    assert catalog.find(target="pg_lock") == []


def test_a_copy_bucket_without_object_lock_is_refused_before_anything_is_copied(
    moto_server: MotoServer, catalog: Catalog, local_storage: LocalStorage,
) -> None:
    client, name = _bucket(moto_server, lock_enabled=False)
    config = CopyStorageConfig(storage_type="s3", s3_bucket=name, object_lock_mode="governance")
    backups = engine_for(local_storage, catalog, {}, copy=CopySettings(storage=config),
                         copy_storage=storage_from_config(config, s3_client=client))
    record = stored_backup(local_storage, catalog, "pg_lock", datetime.now(UTC))
    with pytest.raises(StorageNotReady) as err:
        backups.copy_backup(record.backup_id)
    message = str(err.value)
    assert f"BACKUP_COPY_OBJECT_LOCK_MODE=governance but bucket {name!r}" in message
    assert "put-object-lock-configuration" in message
    assert message.endswith("or unset BACKUP_COPY_OBJECT_LOCK_MODE")
    assert client.list_objects_v2(Bucket=name).get("KeyCount") == 0
    assert backups.copy_workflow().records.find() == []


def test_every_object_of_a_backup_is_locked_and_cleanup_deletes_it_only_after_the_date(
    moto_server: MotoServer, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    client, name = _bucket(moto_server, lock_enabled=True)
    storage = S3Storage(client, name, object_lock=LOCK)
    before = datetime.now(UTC)
    backup_id = layout.make_backup_id(before - timedelta(days=40), "worm")
    BackupRunner(storage, catalog, SETTINGS).run("pg_lock", source_conn, RunContext(), backup_id)
    with catalog.cursor() as cur:  # the backup is 40 days old: no age policy keeps it
        cur.execute("UPDATE backup_records SET started_at = started_at - interval '40 days'")
    newer = stored_backup(storage, catalog, "pg_lock", before - timedelta(days=10))
    written = datetime.now(UTC)
    objects = [o.key for o in storage.list_objects()]
    names = {key.rsplit("/", 1)[1] for key in objects}
    assert {"dump.pgc.zst", "manifest.json", "globals.sql.zst", "globals.json"} <= names
    for key in objects:
        head = client.head_object(Bucket=name, Key=key)
        until = head["ObjectLockRetainUntilDate"]
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        assert before + PERIOD - SLACK <= until <= written + PERIOD + SLACK, key
    folder = layout.backup_folder("database", "pg_lock", backup_id)
    mine = [k for k in objects if k.startswith(folder + "/")]

    with pytest.raises(ObjectLocked) as refused:  # S3 refuses: the date is ahead
        storage.delete(mine)
    assert sorted(refused.value.keys) == sorted(mine)
    assert all(storage.exists(k) for k in mine)

    cleanup = Cleanup(storage, catalog, [AgePolicy(7)], "database")
    now = datetime.now(UTC) + timedelta(days=1)  # the plan's clock is past the date; S3's not
    early = cleanup.run(now, deleted_by="test:worm")
    assert early.errors == [] and early.removed == []
    assert [entry.split(":")[0] for entry in early.locked] == [backup_id]
    assert "S3 Object Lock keeps" in early.locked[0]
    assert catalog.get(backup_id).status == Status.COMPLETED  # type: ignore[union-attr]
    assert all(storage.exists(k) for k in mine)

    time.sleep(max(0.0, (written + PERIOD - datetime.now(UTC)).total_seconds()) + 1.1)
    late = cleanup.run(now, deleted_by="test:worm")
    assert late.errors == [] and late.locked == [] and late.removed == [backup_id]
    assert catalog.get(backup_id).status == Status.DELETED  # type: ignore[union-attr]
    assert _versions(storage, folder + "/") == []  # every version gone, no delete markers
    assert [g for g in _versions(storage, "database/_globals/")] == []  # unused globals too
    assert catalog.get(newer.backup_id).status == Status.COMPLETED  # type: ignore[union-attr]


def test_an_abandoned_backup_s_locked_objects_are_swept_once_the_date_has_passed(
    moto_server: MotoServer, catalog: Catalog,
) -> None:
    client, name = _bucket(moto_server, lock_enabled=True)
    storage = S3Storage(client, name, object_lock=LOCK)
    dead = stored_backup(storage, catalog, "pg_dead", datetime.now(UTC) - timedelta(days=3),
                         Status.RUNNING)
    written = datetime.now(UTC)
    with catalog.cursor() as cur:  # its process died three days ago
        cur.execute("UPDATE backup_records SET heartbeat_at = started_at WHERE id = %s",
                    (dead.backup_id,))
    folder = layout.backup_folder("database", "pg_dead", dead.backup_id)
    cleanup = Cleanup(storage, catalog, [AgePolicy(7)], "database")
    now = datetime.now(UTC) + timedelta(days=2)  # the partial dump is a leftover by then

    early = cleanup.run(now, deleted_by="test:worm")  # does not fail on the locked dump
    assert early.abandoned == [dead.backup_id] and early.errors == []
    assert [entry.split(":")[0] for entry in early.locked] == [folder]
    assert catalog.get(dead.backup_id).status == Status.FAILED  # type: ignore[union-attr]
    assert _versions(storage, folder + "/") != []

    time.sleep(max(0.0, (written + PERIOD - datetime.now(UTC)).total_seconds()) + 1.1)
    late = cleanup.run(now, deleted_by="test:worm")
    assert late.locked == [] and late.leftovers_removed == [layout.dump_key(folder, True)]
    assert _versions(storage, folder + "/") == []


def test_wal_pushed_by_amprenta_wal_is_locked_by_its_settings_file(
    moto_server: MotoServer, pg_cluster: ClusterBase, tmp_path: Path,
) -> None:
    client, name = _bucket(moto_server, lock_enabled=True)
    values = {**wal_settings(moto_server, name, "pg_lock.wal", tmp_path / "spool"),
              "BACKUP_OBJECT_LOCK_MODE": "governance", "BACKUP_OBJECT_LOCK_DAYS": "2",
              "BACKUP_WAL_ASYNC": "false"}
    config = write_config_file(tmp_path / "wal.env", values)
    segment = a_wal_segment(pg_cluster)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "AWS_"))}
    done = subprocess.run([wal_command(None), "--config", str(config), "push", str(segment),
                           segment.name], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"]]
    assert len(keys) == 2  # the segment and its checksum sidecar
    for key in keys:
        head = client.head_object(Bucket=name, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=1.9)


def test_multipart_uploads_ask_for_the_lock_too(moto_server: MotoServer) -> None:
    client, name = _bucket(moto_server, lock_enabled=True)
    sent: dict[str, dict[str, Any]] = {}

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:  # None: params unchanged
        sent.setdefault(model.name, dict(params))

    client.meta.events.register("provide-client-params.s3.*", record)
    storage = S3Storage(client, name, part_size=5 * MIB, object_lock=LOCK)
    with storage.open_writer("big/object") as writer:
        writer.write(os.urandom(11 * MIB))
    assert {"CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"} <= set(sent)
    start = sent["CreateMultipartUpload"]
    assert start["ObjectLockMode"] == "GOVERNANCE"
    assert abs(start["ObjectLockRetainUntilDate"] - datetime.now(UTC) - PERIOD) < \
        timedelta(seconds=10)
    storage.put_bytes("small/object", b"one PutObject")
    assert sent["PutObject"]["ObjectLockMode"] == "GOVERNANCE"


def test_copy_retention_skips_and_reports_a_delete_the_copy_s_lock_refuses(
    moto_server: MotoServer, catalog: Catalog, local_storage: LocalStorage,
) -> None:
    client, name = _bucket(moto_server, lock_enabled=True)
    copy = S3Storage(client, name, object_lock=LOCK)
    backups = engine_for(local_storage, catalog, {}, BackupConfig(retention_days=7),
                         copy=CopySettings(storage=CopyStorageConfig(storage_type="s3")),
                         copy_storage=copy)
    started = datetime.now(UTC)
    old, new = (stored_backup(local_storage, catalog, "pg_lock", started - timedelta(days=d))
                for d in (40, 1))
    for record in (old, new):
        backups.copy_backup(record.backup_id)
    rows = backups.copy_workflow().records
    now = datetime.now(UTC) + timedelta(days=1)  # the plan's clock is past the date; S3's not

    early = backups.copy_retention("test:worm", now=now)
    assert early.errors == [] and early.removed == []  # errors failed weekly_cleanup
    assert [entry.split(":")[0] for entry in early.locked] == [old.backup_id]
    assert "S3 Object Lock keeps" in early.locked[0] and "1 skipped under S3 Object Lock" in \
        early.summary() and early.to_dict()["locked"] == early.locked
    assert rows.get(old.backup_id).status == CopyStatus.VERIFIED  # type: ignore[union-attr]
    assert any(old.backup_id in key for key in _versions(copy, ""))
    assert rows.get(new.backup_id).status == CopyStatus.VERIFIED  # type: ignore[union-attr]
    # after the date the same delete goes through: shown on the primary above (same S3Storage)
