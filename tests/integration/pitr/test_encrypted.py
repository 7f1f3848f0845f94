"""Encrypted WAL archiving and base backups: a real cluster archives through ``amprenta-wal``
with ``BACKUP_ENCRYPTION=key`` into moto's S3, a base backup is taken encrypted, and a restore to
a time brings back exactly the rows before it; ``restore_command`` gets the keyring through the
engine's fetch settings. Missing keys and tampered or swapped segments are refused."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.encryption import KeyService, KeyUnavailable, TamperedObject
from amprenta_backup.core.encryption.setup import key_service
from amprenta_backup.core.encryption.stream import MAGIC
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.models import Manifest, RunContext, utcnow
from amprenta_backup.core.pitr.basebackup import BaseBackupRunner
from amprenta_backup.core.pitr.localserver import free_port, server_user
from amprenta_backup.core.pitr.restore import PitrRequest, PitrRestore
from amprenta_backup.core.settings import BackupConfig, EncryptionSettings, StorageConfig
from amprenta_backup.core.wal.archive import WalArchive, checksum_key
from amprenta_backup.core.wal.ranges import WalRange
from amprenta_backup.sandbox.s3server import MotoServer
from tests.integration.conftest import conninfo
from tests.integration.pitr.test_restore import counts, stop
from tests.support.wal import PREFIX, WalSetup, scratch_parent, start_archiving_cluster

TARGET = "pg_enc.pitr"
CONN = "backup_enc"
KEY = os.urandom(32)
RING = {f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(
    {"conn_type": "generic", "password": base64.b64encode(KEY).decode()})}
ENCRYPTION = {"BACKUP_ENCRYPTION": "key", "BACKUP_ENCRYPTION_KEY_CONN": CONN,
              "BACKUP_ENCRYPTION_KEY_ID": "w1"}


@dataclass
class Encrypted:
    wal: WalSetup
    keys: KeyService
    catalog: Catalog
    manifest: Manifest
    t: datetime
    parent: Path

    def engine(self, keys: KeyService | None = None) -> BackupEngine:
        """The engine whose fetch settings ``restore_command`` gets."""
        settings = self.wal.settings
        storage_env = {k: v for k, v in settings.items() if k.startswith("BACKUP_")}
        config = BackupConfig.from_env({**storage_env, **ENCRYPTION, "BACKUP_TARGETS": "x"})
        credentials = {k: settings[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        return BackupEngine(config, storage=self.wal.archive.storage, catalog=self.catalog,
                            s3_credentials=lambda: credentials, keys=keys or self.keys)

    def restorer(self, keys: KeyService | None = None) -> PitrRestore:
        keys = keys or self.keys
        archive = WalArchive(self.wal.archive.storage, PREFIX, TARGET, keys=keys)
        return PitrRestore(archive.storage, archive, self.wal.command,
                           self.engine(keys).fetch_env(), server_user("postgres"), keys)

    def request(self, name: str) -> PitrRequest:
        return PitrRequest.parse(self.t.isoformat(), str(self.parent / name), free_port())


def keys_from(environ: dict[str, str]) -> KeyService:
    return key_service(EncryptionSettings(mode="key", key_conn=CONN, key_id="w1"),
                       StorageConfig(), environ=environ)


@pytest.fixture(scope="module")
def encrypted(moto_server: MotoServer) -> Iterator[Encrypted]:
    bucket = moto_server.create_bucket(f"pitr-enc-{secrets.token_hex(4)}")
    wal = start_archiving_cluster(moto_server, bucket, TARGET, wal_extra={**ENCRYPTION, **RING})
    keys = keys_from(RING)
    wal.archive = WalArchive(wal.archive.storage, PREFIX, TARGET, keys=keys)
    parent = scratch_parent()
    try:
        wal.cluster.execute("CREATE DATABASE enc_catalog")
        catalog = Catalog(conninfo(wal.cluster, "enc_catalog"))
        wal.cluster.execute("CREATE TABLE marks (phase text, n int); INSERT INTO marks SELECT "
                            "'before-backup', g FROM generate_series(1, 100) g")
        runner = BaseBackupRunner(wal.archive.storage, catalog, PREFIX, keys=keys)
        manifest = runner.take(TARGET, conninfo(wal.cluster, "postgres"), RunContext(),
                               layout.make_backup_id(utcnow()))
        assert wal.archive.wait_for(WalRange.of(manifest).stop_segment, 60, 0.2)
        runner.complete(manifest, wal.archive)
        wal.cluster.execute("INSERT INTO marks SELECT 'before', g FROM generate_series(1, 900) g")
        wal.switch_wal()
        time.sleep(1)
        t = wal.cluster.query("SELECT clock_timestamp()")[0][0]
        time.sleep(1)
        wal.cluster.execute("INSERT INTO marks SELECT 'after', g FROM generate_series(1, 50) g")
        wal.switch_wal()
        yield Encrypted(wal, keys, catalog, manifest, t, parent)
    finally:
        wal.stop()
        shutil.rmtree(parent, ignore_errors=True)


def test_an_encrypted_base_backup_and_wal_restore_to_t(encrypted: Encrypted) -> None:
    storage, archive = encrypted.wal.archive.storage, encrypted.wal.archive
    assert encrypted.manifest.encryption and encrypted.manifest.encryption["key_id"] == "w1"
    assert storage.get_bytes(encrypted.manifest.key).startswith(MAGIC)
    names = list(archive.list_names("00000001"))
    assert names and all(storage.get_bytes(archive.key(n)).startswith(MAGIC) for n in names)
    report = encrypted.restorer().run(encrypted.manifest, encrypted.request("to_t"),
                                      conninfo(encrypted.wal.cluster, "postgres"))
    try:
        assert counts(report.port, conninfo(encrypted.wal.cluster, "postgres")) == {
            "before-backup": 100, "before": 900}
    finally:
        stop(report)


def test_a_missing_key_refuses_the_restore_before_anything_exists(encrypted: Encrypted) -> None:
    other = {f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(
        {"conn_type": "generic", "extra": {"keys": {"w0": base64.b64encode(KEY).decode()}}})}
    request = encrypted.request("no_key")
    with pytest.raises(KeyUnavailable, match="needs master key id 'w1'.*it has: w0"):
        encrypted.restorer(keys_from(other)).run(encrypted.manifest, request,
                                                 conninfo(encrypted.wal.cluster, "postgres"))
    assert not request.data_dir.exists()


def test_restore_command_without_the_key_aborts_naming_it(encrypted: Encrypted,
                                                          tmp_path: Path) -> None:
    name = next(encrypted.wal.archive.list_names("00000001"))
    settings = {k: v for k, v in encrypted.wal.settings.items() if not k.startswith("AIRFLOW_")}
    config = tmp_path / "nokey.env"
    config.write_text("".join(f"{k}='{v}'\n" for k, v in settings.items()))
    config.chmod(0o600)
    done = encrypted.wal.cli("fetch", name, str(tmp_path / name), config=config)
    assert done.returncode != 0 and not (tmp_path / name).exists()
    assert "'w1'" in done.stderr and CONN in done.stderr, done.stderr


def test_tampered_and_swapped_segments_are_refused(encrypted: Encrypted, tmp_path: Path) -> None:
    source = encrypted.wal.archive
    copy = WalArchive(source.storage, PREFIX, "tampered.pitr", keys=encrypted.keys)
    first, second = [n for n in source.list_names("00000001") if len(n) == 24][:2]
    for name in (first, second):  # the same objects under another target: a swap
        copy.storage.put_bytes(copy.key(name), source.storage.get_bytes(source.key(name)))
        copy.storage.put_bytes(checksum_key(copy.key(name)),
                               source.storage.get_bytes(checksum_key(source.key(name))))
    with pytest.raises(KeyUnavailable, match="does not open"):  # bound to its target and name
        copy.fetch(first, tmp_path / first)
    original = source.storage.get_bytes(source.key(second))
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    source.storage.put_bytes(source.key(second), bytes(flipped))
    try:
        with pytest.raises(TamperedObject, match="authentication tag"):
            source.fetch(second, tmp_path / second)
    finally:
        source.storage.put_bytes(source.key(second), original)
    assert not (tmp_path / first).exists() and not (tmp_path / second).exists()
    assert source.fetch(second, tmp_path / second)  # the original still opens
