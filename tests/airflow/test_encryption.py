"""daily_backup with client-side encryption through Airflow's dag.test(): the master key from an
Airflow connection (read by the task through Airflow's connection lookup), or KMS on moto
through the amazon provider's hook; every dump and the globals are stored encrypted and
verify reads them back (every tag)."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from amprenta_backup.core.encryption.setup import key_service
from amprenta_backup.core.encryption.stream import MAGIC
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage import LocalStorage, S3Storage, Storage
from amprenta_backup.core.verify import verify_backup
from amprenta_backup.sandbox.s3server import MotoServer

WHEN = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


def _encrypted_manifests(backup_env: dict[str, Any], storage: Storage) -> list[Manifest]:
    records = backup_env["catalog"].find()
    manifests = [r.manifest for r in records if r.manifest is not None]
    assert len(manifests) == 2
    for manifest in manifests:
        assert manifest.encryption is not None
        assert storage.get_bytes(manifest.key).startswith(MAGIC)
        ref = manifest.globals_ref()
        assert ref is not None and ref.encryption is not None
    return manifests


def test_daily_backup_with_a_connection_key_stores_encrypted_and_verifies(
        run_dag: Any, backup_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_ENCRYPTION",
                       json.dumps({"conn_type": "generic", "password": key}))
    monkeypatch.setenv("BACKUP_ENCRYPTION", "key")
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY_ID", "af-2026-11")
    dag_run = run_dag("daily_backup", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "success"
    storage = LocalStorage(backup_env["root"])
    manifests = _encrypted_manifests(backup_env, storage)
    assert {m.encryption["key_id"] for m in manifests if m.encryption} == {"af-2026-11"}

    config = BackupConfig.from_env()  # the CLI's way to the same key: AIRFLOW_CONN_...
    keys = key_service(config.encryption, config.storage)
    for manifest in manifests:  # round trips with restores: tests/integration/backup
        assert verify_backup(storage, backup_env["catalog"], manifest, keys=keys).ok


def test_daily_backup_with_kms_through_the_aws_connection(
        run_dag: Any, s3_env: dict[str, Any], moto_server: MotoServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    kms = boto3.client("kms", endpoint_url=moto_server.endpoint_url,
                       region_name=moto_server.region, aws_access_key_id=moto_server.access_key,
                       aws_secret_access_key=moto_server.secret_key)
    arn = kms.create_key(Description="airflow test")["KeyMetadata"]["Arn"]
    monkeypatch.setenv("BACKUP_ENCRYPTION", "kms")
    monkeypatch.setenv("BACKUP_ENCRYPTION_KMS_KEY_ID", arn)
    dag_run = run_dag("daily_backup", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "success"
    storage = S3Storage(s3_env["client"], s3_env["bucket"])
    manifests = _encrypted_manifests(s3_env, storage)
    assert {m.encryption["key_id"] for m in manifests if m.encryption} == {arn}
    config = BackupConfig.from_env()
    keys = key_service(config.encryption, config.storage)  # AIRFLOW_CONN_AWS_BACKUPS: moto
    for manifest in manifests:
        assert verify_backup(storage, s3_env["catalog"], manifest, keys=keys).ok
