"""The second copy with real storages (a local folder, moto's S3 server over HTTP), real
backups of a real cluster and a real catalog: copied, checked there, read from, kept."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.copy.records import CopyRecords, CopyStatus
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ChecksumMismatch
from amprenta_backup.core.models import RunContext, Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import (
    BackupConfig,
    BackupTarget,
    CopySettings,
    CopyStorageConfig,
    DrillSettings,
)
from amprenta_backup.core.storage import LocalStorage, S3Storage, Storage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from amprenta_backup.sandbox.s3server import MotoServer
from tests.support.backups import engine_for, flip_byte, make_backup, rewrite
from tests.support.stored_backups import stored_backup

COPY_PREFIX = "dr/copies"


def copy_settings(**values: object) -> CopySettings:
    return CopySettings(storage=CopyStorageConfig(storage_type="s3", s3_prefix=COPY_PREFIX),
                        **values)


def engine(primary: Storage, copy: Storage, catalog: Catalog, conn: PgConnInfo,
           config: BackupConfig | None = None, **values: object) -> BackupEngine:
    return engine_for(primary, catalog, {"pg_source": conn}, config,
                      copy=copy_settings(**values), copy_storage=copy)


def sha256(storage: Storage, key: str) -> str:
    return hashlib.sha256(storage.get_bytes(key)).hexdigest()


def copied_key(key: str) -> str:
    """Where the copy keeps a primary key (``database/...`` -> ``dr/copies/...``)."""
    return f"{COPY_PREFIX}/{key.split('/', 1)[1]}"


@pytest.fixture
def second_bucket(moto_server: MotoServer) -> S3Storage:
    return S3Storage(moto_server.client(), moto_server.create_bucket(
        f"copy-{hashlib.sha256(str(id(object())).encode()).hexdigest()[:8]}"))


def test_local_backup_is_copied_to_s3_and_its_sha256_checked_there(
    local_storage: LocalStorage, s3_storage: S3Storage, catalog: Catalog,
    source_conn: PgConnInfo,
) -> None:
    manifest = make_backup(local_storage, catalog, source_conn)
    outcome = engine(local_storage, s3_storage, catalog, source_conn).copy_backup(
        manifest.backup_id)

    assert sha256(s3_storage, copied_key(manifest.key)) == manifest.sha256
    folder = layout.folder_of(manifest.key)
    assert s3_storage.get_bytes(copied_key(layout.manifest_key(folder))) == \
        local_storage.get_bytes(layout.manifest_key(folder))
    globals_ref = manifest.globals_ref()
    assert globals_ref is not None
    assert sha256(s3_storage, copied_key(globals_ref.key)) == globals_ref.sha256
    assert outcome.copied[-1].endswith("/manifest.json")  # the manifest goes last
    (row,) = CopyRecords(catalog, s3_storage.uri(COPY_PREFIX)).find()
    assert row.status == CopyStatus.VERIFIED and row.sha256 == manifest.sha256
    assert row.location == s3_storage.uri(copied_key(folder))
    assert row.verified_at is not None and row.copied_at is not None
    stored = {o.key: o.size for o in s3_storage.list_objects(COPY_PREFIX)}
    assert row.stored_bytes == sum(stored.values()) and row.objects == len(stored) == 4


def test_s3_to_s3_copy_in_another_bucket_verifies_from_the_copy(
    s3_storage: S3Storage, second_bucket: S3Storage, catalog: Catalog,
    source_conn: PgConnInfo,
) -> None:
    manifest = make_backup(s3_storage, catalog, source_conn)
    backups = engine(s3_storage, second_bucket, catalog, source_conn)
    backups.copy_backup("latest", target="pg_source")
    assert sha256(second_bucket, copied_key(manifest.key)) == manifest.sha256

    result = backups.verify(manifest.backup_id, from_copy=True)
    assert result.ok and result.location.startswith(second_bucket.uri(COPY_PREFIX))
    assert catalog.get(manifest.backup_id).status == Status.COMPLETED  # type: ignore[union-attr]

    rewrite(second_bucket, copied_key(manifest.key), flip_byte)
    damaged = backups.verify(manifest.backup_id, from_copy=True)
    assert not damaged.ok and "sha256" in damaged.detail
    (row,) = CopyRecords(catalog, second_bucket.uri(COPY_PREFIX)).find()
    assert row.status == CopyStatus.CORRUPT  # the copy's row, never the primary's record
    assert catalog.get(manifest.backup_id).status == Status.COMPLETED  # type: ignore[union-attr]


def test_a_damaged_primary_is_not_copied(
    local_storage: LocalStorage, s3_storage: S3Storage, catalog: Catalog,
    source_conn: PgConnInfo,
) -> None:
    manifest = make_backup(local_storage, catalog, source_conn)
    rewrite(local_storage, manifest.key, flip_byte)
    with pytest.raises(ChecksumMismatch, match="damaged and was not copied"):
        engine(local_storage, s3_storage, catalog, source_conn).copy_backup(manifest.backup_id)
    (row,) = CopyRecords(catalog, s3_storage.uri(COPY_PREFIX)).find()
    assert row.status == CopyStatus.FAILED and "sha256" in (row.error or "")
    assert not any(o.key.endswith("manifest.json") for o in s3_storage.list_objects())


def test_a_corrupt_primary_restores_from_the_copy_with_the_same_rows(
    local_storage: LocalStorage, s3_storage: S3Storage, catalog: Catalog,
    source_conn: PgConnInfo, pg_cluster: ClusterBase, fresh_db: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    manifest = make_backup(local_storage, catalog, source_conn)
    backups = engine(local_storage, s3_storage, catalog, source_conn)
    backups.copy_backup(manifest.backup_id)
    rewrite(local_storage, manifest.key, flip_byte)
    name = fresh_db("from_copy")
    pg_cluster.drop_database(name)  # a name that is free; dropped again after the test

    with caplog.at_level(logging.WARNING):
        result = backups.restore_backup(manifest.backup_id, name)
    assert "falling back to the copy" in caplog.text and s3_storage.uri(COPY_PREFIX) in caplog.text
    assert result.plan.location == s3_storage.uri(copied_key(manifest.key))
    assert not result.mismatches and result.row_counts
    assert_databases_equal(pg_cluster, "amprenta", pg_cluster, name)
    assert catalog.get(manifest.backup_id).status == Status.CORRUPT  # type: ignore[union-attr]


def test_an_unreachable_primary_falls_back_to_the_copy(
    own_moto: MotoServer, local_storage: LocalStorage, catalog: Catalog,
    source_conn: PgConnInfo, caplog: pytest.LogCaptureFixture,
) -> None:
    primary = S3Storage(own_moto.client(), own_moto.create_bucket("primary"), stall_seconds=10)
    manifest = make_backup(primary, catalog, source_conn)
    backups = engine_for(primary, catalog, {"pg_source": source_conn},
                         copy=CopySettings(storage=CopyStorageConfig(
                             storage_type="local", local_path=str(local_storage.root))),
                         copy_storage=local_storage)
    backups.copy_backup(manifest.backup_id)
    own_moto.stop()

    with caplog.at_level(logging.WARNING):
        result = backups.verify(manifest.backup_id)
    assert result.ok and result.location.startswith(local_storage.uri(""))
    assert "falling back to the copy" in caplog.text


def test_copy_retention_keeps_its_own_days_and_the_never_delete_rules(
    local_storage: LocalStorage, s3_storage: S3Storage, catalog: Catalog,
    source_conn: PgConnInfo,
) -> None:
    backups = engine(local_storage, s3_storage, catalog, source_conn,
                     BackupConfig(retention_days=30), retention_days=365)
    ids = {}
    for days in (400, 300, 200, 0):
        ids[days] = stored_backup(local_storage, catalog, "pg_source",
                                  catalog.now() - timedelta(days=days)).backup_id
        backups.copy_backup(ids[days])
    copies = CopyRecords(catalog, s3_storage.uri(COPY_PREFIX))
    copies.set_status(ids[300], CopyStatus.COPYING)  # a retry copying it right now

    primary = backups.retention().run(None, "test")
    assert sorted(primary.removed) == sorted([ids[400], ids[300], ids[200]])
    report = backups.copy_retention("test")
    assert report.removed == [ids[400]]
    assert [d.reason for d in report.plan.kept if d.record.backup_id == ids[300]] == [
        "running: a backup in progress is never deleted"]
    left = {c.backup_id: c.status for c in copies.find()}
    assert left == {ids[400]: CopyStatus.DELETED, ids[300]: CopyStatus.COPYING,
                    ids[200]: CopyStatus.VERIFIED, ids[0]: CopyStatus.VERIFIED}
    assert not any(ids[400] in o.key for o in s3_storage.list_objects(COPY_PREFIX))
    # the primary's backup of 200 days ago is gone; its copy is still there and readable
    assert not any(ids[200] in o.key for o in local_storage.list_objects())
    seen = backups.copy_workflow().catalog_view().get(ids[200])
    assert seen is not None and seen.status == Status.VERIFIED
    dump = s3_storage.key_of(seen.location) + "/dump.pgc.zst"  # type: ignore[operator]
    assert sha256(s3_storage, dump) == seen.sha256


def test_health_warns_when_the_copy_lags_behind(
    local_storage: LocalStorage, s3_storage: S3Storage, catalog: Catalog,
    source_conn: PgConnInfo,
) -> None:
    config = BackupConfig(targets="pg_source")  # type: ignore[arg-type]
    backups = engine(local_storage, s3_storage, catalog, source_conn, config, max_lag_hours=2)
    now = catalog.now()
    old = stored_backup(local_storage, catalog, "pg_source", now - timedelta(days=1))
    backups.copy_backup(old.backup_id)
    new = stored_backup(local_storage, catalog, "pg_source", now - timedelta(minutes=2))
    lag = backups.copy_workflow().lag(["pg_source"], now + timedelta(hours=1))
    assert [str(r.status) for r in lag] == ["ok"]
    later = now + timedelta(hours=3)
    (warning,) = [r for r in backups.health(later) if r.name == "copy_lag"]
    assert str(warning.status) == "warning" and warning.target == "pg_source"
    assert new.backup_id in warning.detail and old.backup_id in warning.detail
    assert "BACKUP_COPY_MAX_LAG_HOURS=2" in warning.detail
    backups.copy_backup(new.backup_id)
    (done,) = backups.copy_workflow().lag(["pg_source"], later)
    assert str(done.status) == "ok"


def test_archived_wal_is_copied_once_segment_before_sidecar(
    s3_storage: S3Storage, local_storage: LocalStorage, catalog: Catalog,
    source_conn: PgConnInfo,
) -> None:
    wal = "database/pg_pitr/wal/00000001/"
    names = [f"{wal}00000001000000000000000{n}.zst" for n in (1, 2)]
    for name in names:
        s3_storage.put_bytes(name, name.encode() * 100)
        s3_storage.put_bytes(name + ".sha256", b"abc  " + name.encode())
    copies = engine(s3_storage, local_storage, catalog, source_conn).copy_workflow()
    copied = copies.copy_wal("pg_pitr")
    assert copied == [names[0], names[0] + ".sha256", names[1], names[1] + ".sha256"]
    for key in copied:
        assert local_storage.get_bytes(copied_key(key)) == s3_storage.get_bytes(key)
    assert copies.copy_wal("pg_pitr") == []  # nothing new
    s3_storage.put_bytes(names[1], b"rewritten after a timeline switch")
    assert copies.copy_wal("pg_pitr") == [names[1]]


def test_a_restore_drill_from_the_copy_passes_and_names_the_copy(
    local_storage: LocalStorage, s3_storage: S3Storage, catalog: Catalog,
    source_conn: PgConnInfo, pg_cluster: ClusterBase,
) -> None:
    manifest = make_backup(local_storage, catalog, source_conn)
    backups = engine(local_storage, s3_storage, catalog, source_conn)
    backups.copy_backup(manifest.backup_id)
    rewrite(local_storage, manifest.key, flip_byte)  # the primary's bytes are of no use now

    record = backups.drills(DrillSettings(), from_copy=True).run(
        BackupTarget("pg_source"), RunContext(dag_id="monthly_restore_drill", run_id="copy_1",
                                              logical_date=catalog.now()))
    assert record.passed is True, record.summary
    assert record.backup_id == manifest.backup_id
    assert (record.backup_location or "").startswith(s3_storage.uri(COPY_PREFIX))
    assert not pg_cluster.database_exists(record.scratch_database)


def test_recover_from_the_copy_onto_a_new_server_when_the_primary_is_lost(
    local_storage: LocalStorage, s3_storage: S3Storage, catalog: Catalog,
    source_conn: PgConnInfo, pg_cluster: ClusterBase, new_server: ClusterBase,
) -> None:
    from amprenta_backup.core.recovery.plan import RecoveryRequest
    from tests.integration.conftest import conninfo

    manifest = make_backup(local_storage, catalog, source_conn)
    backups = engine_for(local_storage, catalog, {"pg_source": source_conn,
                                                  "pg_new": conninfo(new_server, "postgres")},
                         copy=copy_settings(), copy_storage=s3_storage)
    backups.copy_backup(manifest.backup_id)
    for obj in list(local_storage.list_objects()):  # the primary storage is lost
        local_storage.delete([obj.key])

    report = backups.recovery(from_copy=True).run(RecoveryRequest(server_conn_id="pg_new"),
                                                   RunContext())
    assert report.passed, report.to_dict()
    assert s3_storage.uri(COPY_PREFIX) in json.dumps(report.to_dict(), default=str)
    assert_databases_equal(pg_cluster, "amprenta", new_server, "amprenta")


def test_catch_up_copies_the_backups_a_failed_copy_left_behind(
    local_storage: LocalStorage, s3_storage: S3Storage, catalog: Catalog,
    source_conn: PgConnInfo,
) -> None:
    now = catalog.now()
    old, missed, new = (stored_backup(local_storage, catalog, "pg_source",
                                      now - timedelta(days=d)) for d in (3, 2, 1))
    copies = engine(local_storage, s3_storage, catalog, source_conn).copy_workflow()
    copies.copy(old.backup_id)
    copies.copy(new.backup_id)
    caught = copies.catch_up("pg_source")
    assert [o.record.backup_id for o in caught] == [missed.backup_id]
    assert copies.records.get(missed.backup_id).status == CopyStatus.VERIFIED  # type: ignore[union-attr]
    assert copies.catch_up("pg_source") == []


def test_an_encrypted_backup_is_copied_as_stored_and_restores_from_the_copy(
    local_storage: LocalStorage, s3_storage: S3Storage, catalog: Catalog,
    source_conn: PgConnInfo, pg_cluster: ClusterBase, fresh_db: Callable[[str], str],
) -> None:
    from tests.integration.backup.test_encryption import KEY_A, conn_keys, keyring_env

    keys = conn_keys("k1", keyring_env(KEY_A))
    manifest = make_backup(local_storage, catalog, source_conn, keys=keys)
    backups = engine_for(local_storage, catalog, {"pg_source": source_conn}, keys=keys,
                         copy=copy_settings(), copy_storage=s3_storage)
    backups.copy_backup(manifest.backup_id)
    assert s3_storage.get_bytes(copied_key(manifest.key)) == local_storage.get_bytes(manifest.key)
    rewrite(local_storage, manifest.key, flip_byte)
    name = fresh_db("enc_from_copy")
    pg_cluster.drop_database(name)
    result = backups.restore_backup(manifest.backup_id, name)
    assert result.plan.location == s3_storage.uri(copied_key(manifest.key))
    assert_databases_equal(pg_cluster, "amprenta", pg_cluster, name)
