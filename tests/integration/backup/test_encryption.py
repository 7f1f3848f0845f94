"""Client-side encryption of real backups: pg_dump -> zstd -> AES-GCM -> storage and back.

Keys come from a connection defined as ``AIRFLOW_CONN_<ID>`` (resolved by core/connections as
the CLI and ``amprenta-wal`` do) or from KMS on the session's moto server. Every restore is
compared with the source database; tampered stored bytes are refused by the chunk tags even
when the manifest's sha256 is forged to match them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime

import boto3
import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.connections import connection_fields
from amprenta_backup.core.encryption import KeyConfig, KeyService, KeyUnavailable, envelope_of
from amprenta_backup.core.encryption.setup import key_service
from amprenta_backup.core.encryption.stream import MAGIC, TAG_BYTES, header_bytes
from amprenta_backup.core.errors import ChecksumMismatch
from amprenta_backup.core.models import Manifest, RunContext, Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pitr.basebackup import BaseBackupRunner
from amprenta_backup.core.settings import EncryptionSettings, StorageConfig
from amprenta_backup.core.storage import Storage
from amprenta_backup.core.verify import verify_backup
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from amprenta_backup.sandbox.s3server import MotoServer
from tests.support.backups import engine_for, make_backup

KEY_A, KEY_B = os.urandom(32), os.urandom(32)
CONN = "backup_enc"
SMALL_CHUNK = 16 * 1024  # the sample dump then spans several chunks


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def keyring_env(password: bytes | None, **older: bytes) -> dict[str, str]:
    """``AIRFLOW_CONN_BACKUP_ENC``: the current key in the password, older ones in extra."""
    value = {"conn_type": "generic", "password": _b64(password) if password else "",
             "extra": {"keys": {key_id: _b64(key) for key_id, key in older.items()}}}
    return {f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(value)}


def conn_keys(key_id: str, environ: dict[str, str], chunk: int | None = None) -> KeyService:
    settings = EncryptionSettings(mode="key", key_conn=CONN, key_id=key_id)
    if chunk is None:
        return key_service(settings, StorageConfig(), environ=environ)
    return KeyService(KeyConfig(mode="key", key_conn=CONN, key_id=key_id, chunk_bytes=chunk),
                      lookup=lambda conn_id: connection_fields(conn_id, environ))


def _exists(cluster: ClusterBase, name: str) -> bool:
    return bool(list(cluster.query("SELECT 1 FROM pg_database WHERE datname = %s",
                                   params=(name,))))


def _restore_matches(storage: Storage, catalog: Catalog, conn: PgConnInfo, keys: KeyService,
                     manifest: Manifest, cluster: ClusterBase, name: str) -> None:
    engine = engine_for(storage, catalog, {"pg_source": conn}, keys=keys)
    result = engine.restore_backup(manifest.backup_id, target_database=name)
    assert result.performed and result.mismatches == []
    assert_databases_equal(cluster, conn.dbname, cluster, name)


def test_a_connection_key_round_trip_backup_verify_restore(
        local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
        pg_cluster: ClusterBase, new_name: Callable[[str], str]) -> None:
    keys = conn_keys("k1", keyring_env(KEY_A))
    manifest = make_backup(local_storage, catalog, source_conn, keys=keys)
    assert manifest.version == 3 and manifest.encryption is not None
    assert manifest.encryption["key_id"] == "k1" and manifest.encryption["provider"] == "key"
    stored = local_storage.get_bytes(manifest.key)
    assert stored.startswith(MAGIC) and manifest.sha256 == hashlib.sha256(stored).hexdigest()
    ref = manifest.globals_ref()
    assert ref is not None and ref.encryption is not None
    assert local_storage.get_bytes(ref.key).startswith(MAGIC)

    result = verify_backup(local_storage, catalog, manifest, keys=keys)
    assert result.ok, result.detail
    assert "authentication tags" in result.checked and "archive" in result.checked
    _restore_matches(local_storage, catalog, source_conn, keys, manifest, pg_cluster,
                     new_name("enc_restored"))
    engine = engine_for(local_storage, catalog, {"pg_source": source_conn}, keys=keys)
    roles = engine.restore_globals(manifest.backup_id, "pg_source", dry_run=True)
    assert roles.dry_run and "postgres" in ref.roles


def _moto_aws_env(moto_server: MotoServer) -> dict[str, str]:
    """``AIRFLOW_CONN_AWS_DEFAULT`` for moto's server (its KMS too)."""
    aws = {"conn_type": "aws", "login": moto_server.access_key,
           "password": moto_server.secret_key,
           "extra": {"endpoint_url": moto_server.endpoint_url, "region_name": "us-east-1"}}
    return {"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws)}


def test_a_kms_round_trip_on_moto(moto_server: MotoServer, s3_storage: Storage, catalog: Catalog,
                                  source_conn: PgConnInfo, pg_cluster: ClusterBase,
                                  new_name: Callable[[str], str]) -> None:
    kms = boto3.client("kms", endpoint_url=moto_server.endpoint_url,
                       region_name=moto_server.region, aws_access_key_id=moto_server.access_key,
                       aws_secret_access_key=moto_server.secret_key)
    key_arn = kms.create_key(Description="amprenta test")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=f"alias/amprenta-{os.getpid()}", TargetKeyId=key_arn)
    environ = _moto_aws_env(moto_server)
    settings = EncryptionSettings(mode="kms", kms_key_id=f"alias/amprenta-{os.getpid()}")
    keys = key_service(settings, StorageConfig(), environ=environ)

    manifest = make_backup(s3_storage, catalog, source_conn, keys=keys)
    assert manifest.encryption is not None and manifest.encryption["provider"] == "kms"
    assert manifest.encryption["key_id"] == key_arn
    fresh = key_service(EncryptionSettings(), StorageConfig(), environ=environ)  # mode off
    assert verify_backup(s3_storage, catalog, manifest, keys=fresh).ok
    _restore_matches(s3_storage, catalog, source_conn, fresh, manifest, pg_cluster,
                     new_name("kms_restored"))

    envelope = envelope_of(manifest.encryption)
    assert envelope is not None  # the wrapped key of another object: KMS refuses its context
    with pytest.raises(KeyUnavailable, match=f"KMS key '{key_arn}'.*kms:Decrypt"):
        fresh.data_key(envelope, "backup:another:dump.pgc.zst", "backup another")


def _forge(storage: Storage, manifest: Manifest, stored: bytes,
           envelope: dict[str, object] | None = None) -> Manifest:
    """Store ``stored`` as the dump and a manifest whose sha256 and size match it, so only the
    decryption can tell."""
    storage.put_bytes(manifest.key, stored)
    forged = Manifest.from_json(manifest.to_json())
    forged.sha256, forged.stored_bytes = hashlib.sha256(stored).hexdigest(), len(stored)
    forged.encryption = envelope or forged.encryption
    storage.put_bytes(layout.manifest_key(layout.folder_of(manifest.key)), forged.to_json())
    return forged


def _chunks(manifest: Manifest, stored: bytes) -> tuple[bytes, list[bytes]]:
    envelope = envelope_of(manifest.encryption)
    assert envelope is not None
    head = len(header_bytes(envelope))
    size = envelope.chunk_bytes + TAG_BYTES
    return stored[:head], [stored[i:i + size] for i in range(head, len(stored), size)]


def _tamper(kind: str, head: bytes, chunks: list[bytes]) -> bytes:
    if kind == "flip a byte":
        middle = chunks[1]
        return head + b"".join([chunks[0], middle[:9] + bytes([middle[9] ^ 4]) + middle[10:],
                                *chunks[2:]])
    if kind == "drop a chunk":
        return head + b"".join([chunks[0], *chunks[2:]])
    if kind == "reorder chunks":
        return head + b"".join([chunks[1], chunks[0], *chunks[2:]])
    assert kind == "truncate"  # the last chunk cut off whole, at a chunk boundary
    return head + b"".join(chunks[:-1])


def test_tampered_dumps_are_refused_even_with_a_matching_sha256(
        local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo) -> None:
    keys = conn_keys("k1", keyring_env(KEY_A), chunk=SMALL_CHUNK)
    manifest = make_backup(local_storage, catalog, source_conn, keys=keys)
    original = local_storage.get_bytes(manifest.key)
    head, chunks = _chunks(manifest, original)
    assert len(chunks) >= 3, "the sample dump should span several chunks"
    for kind in ("flip a byte", "drop a chunk", "reorder chunks", "truncate"):
        forged = _forge(local_storage, manifest, _tamper(kind, head, chunks))
        result = verify_backup(local_storage, catalog, forged, keys=keys)
        assert not result.ok, kind
        assert "authentication tag" in result.detail, (kind, result.detail)
    _forge(local_storage, manifest, original)
    assert verify_backup(local_storage, catalog, manifest, keys=keys).ok


def test_a_dump_swapped_in_from_another_backup_is_refused(
        local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
        pg_cluster: ClusterBase, new_name: Callable[[str], str]) -> None:
    keys = conn_keys("k1", keyring_env(KEY_A))
    mine = make_backup(local_storage, catalog, source_conn, keys=keys)
    theirs = make_backup(local_storage, catalog, source_conn, keys=keys)
    foreign = local_storage.get_bytes(theirs.key)
    forged = _forge(local_storage, mine, foreign, envelope=theirs.encryption)  # envelope too
    with pytest.raises(KeyUnavailable, match="does not open"):  # the wrap binds the backup id
        verify_backup(local_storage, catalog, forged, keys=keys)
    name = new_name("swapped")
    engine = engine_for(local_storage, catalog, {"pg_source": source_conn}, keys=keys)
    with pytest.raises(ChecksumMismatch, match="does not match the catalog record"):
        engine.restore_backup(mine.backup_id, target_database=name)
    assert not _exists(pg_cluster, name)
    forged = _forge(local_storage, mine, foreign)  # its bytes under this backup's envelope
    result = verify_backup(local_storage, catalog, forged, keys=keys)
    assert not result.ok and "another envelope" in result.detail, result.detail


def test_a_missing_or_wrong_key_fails_naming_the_key_id_and_creates_nothing(
        local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
        pg_cluster: ClusterBase, new_name: Callable[[str], str]) -> None:
    manifest = make_backup(local_storage, catalog, source_conn,
                           keys=conn_keys("k1", keyring_env(KEY_A)))
    missing = conn_keys("k2", keyring_env(KEY_B))
    wrong = conn_keys("k1", keyring_env(KEY_B))
    for keys, words in ((missing, "does not hold (it has: k2)"), (wrong, "does not open")):
        engine = engine_for(local_storage, catalog, {"pg_source": source_conn}, keys=keys)
        name = new_name("nokey")
        with pytest.raises(KeyUnavailable) as caught:
            engine.restore_backup(manifest.backup_id, target_database=name)
        assert "'k1'" in str(caught.value) and words in str(caught.value)
        assert f"'{CONN}'" in str(caught.value)
        assert not _exists(pg_cluster, name)
        with pytest.raises(KeyUnavailable, match="'k1'"):
            engine.verify(manifest.backup_id)
        record = catalog.get(manifest.backup_id)
        assert record is not None and record.status == Status.COMPLETED  # not called corrupt
    undefined = conn_keys("k1", {})
    with pytest.raises(KeyUnavailable, match=f"connection '{CONN}'.*cannot be read"):
        verify_backup(local_storage, catalog, manifest, keys=undefined)


def test_rotation_old_backups_restore_with_their_key_new_ones_use_the_current(
        local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
        pg_cluster: ClusterBase, new_name: Callable[[str], str]) -> None:
    with_a = make_backup(local_storage, catalog, source_conn,
                         keys=conn_keys("2026-11", keyring_env(KEY_A)))
    rotated = conn_keys("2026-12", keyring_env(KEY_B, **{"2026-11": KEY_A}))
    with_b = make_backup(local_storage, catalog, source_conn, keys=rotated)
    assert with_a.encryption and with_a.encryption["key_id"] == "2026-11"
    assert with_b.encryption and with_b.encryption["key_id"] == "2026-12"
    before = local_storage.get_bytes(with_a.key)
    for manifest in (with_a, with_b):
        _restore_matches(local_storage, catalog, source_conn, rotated, manifest, pg_cluster,
                         new_name("rotated"))
    assert local_storage.get_bytes(with_a.key) == before  # never re-encrypted


def test_a_key_that_cannot_seal_refuses_the_backup_before_anything_starts(
        local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
        moto_server: MotoServer) -> None:
    malformed = {f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(
        {"conn_type": "generic", "password": "too short"})}
    kms = key_service(EncryptionSettings(mode="kms", kms_key_id="alias/amprenta-missing"),
                      StorageConfig(), environ=_moto_aws_env(moto_server))
    cases = [(conn_keys("k1", keyring_env(None, k2=KEY_A)), "'k1'", "does not hold"),
             (conn_keys("k1", {}), "'k1'", "cannot be read"),
             (conn_keys("k1", malformed), "'k1'", "is not 32 bytes"),
             (kms, "'alias/amprenta-missing'", "kms:GenerateDataKey")]
    for keys, key_id, words in cases:
        with pytest.raises(KeyUnavailable) as logical:
            make_backup(local_storage, catalog, source_conn, target="pg_nokey", keys=keys)
        with pytest.raises(KeyUnavailable) as base:
            BaseBackupRunner(local_storage, catalog, "database", keys=keys).take(
                "pg_nokey.pitr", source_conn, RunContext(),
                layout.make_backup_id(datetime.now(UTC), f"nokey/{words}"))
        for caught in (logical, base):
            assert key_id in str(caught.value) and words in str(caught.value), caught.value
        assert catalog.find() == []  # refused before the record: no pg_dump, no pg_basebackup
        assert list(local_storage.list_objects()) == []
