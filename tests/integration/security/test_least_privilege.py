"""Least privilege: every S3 call that backup, verify, restore, copy, cleanup, health and WAL
archiving make (recorded by a botocore event hook on the production client, against moto's
S3 server) is granted by the IAM policy published in docs/security.md, and every action that
policy grants is used: the docs and the code cannot drift apart.

The primary has Object Lock (governance, 1 day) and SSE-KMS, the copy neither, so both ways
of deleting (versions, and plain keys) and the KMS permissions are exercised; client-side
encryption is on with KMS too (moto's KMS, its calls recorded by the same hook), so the
workers' own GenerateDataKey and Decrypt are held against the policy as well.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from botocore.config import Config

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.encryption.setup import key_service
from amprenta_backup.core.models import RunContext
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupConfig, CopySettings
from amprenta_backup.core.storage.factory import storage_from_config
from amprenta_backup.core.storage.multipart import MIB
from amprenta_backup.core.storage.s3 import client_config
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.s3server import MotoServer
from tests.support.backups import engine_for
from tests.support.iam import CallLog, actions_of, allowed, published_policy
from tests.support.wal import a_wal_segment

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-amprenta-test"
PRIMARY, COPY = "amprenta-backups", "amprenta-backups-copy"  # the names the policy shows
WAL_TARGET = "pg_source.wal"


def _settings(moto: MotoServer) -> dict[str, str]:
    return {
        "BACKUP_TARGETS": "pg_source", "BACKUP_RETENTION_DAYS": "7",
        "BACKUP_STORAGE_TYPE": "s3", "BACKUP_S3_BUCKET": PRIMARY,
        "BACKUP_S3_REGION": moto.region, "BACKUP_S3_SSE": "aws:kms",
        "BACKUP_S3_KMS_KEY_ID": KMS_KEY, "BACKUP_OBJECT_LOCK_MODE": "governance",
        "BACKUP_OBJECT_LOCK_DAYS": "1",
        "BACKUP_COPY_STORAGE_TYPE": "s3", "BACKUP_COPY_S3_BUCKET": COPY,
        "BACKUP_COPY_S3_REGION": moto.region, "BACKUP_COPY_RETENTION_DAYS": "7",
    }


def _client(moto: MotoServer, log: CallLog) -> object:
    """The production client configuration (timeouts, retries, default checksums)."""
    return log.attach(boto3.client(
        "s3", endpoint_url=moto.endpoint_url, region_name=moto.region,
        aws_access_key_id=moto.access_key, aws_secret_access_key=moto.secret_key,
        config=client_config(120, base=Config(s3={"addressing_style": "path"}))))


def test_every_s3_call_is_in_the_published_policy_and_every_granted_action_is_used(
    own_moto: MotoServer, catalog: Catalog, source_conn: PgConnInfo, pg_cluster: ClusterBase,
    tmp_path: Path,
) -> None:
    setup = own_moto.client()
    setup.create_bucket(Bucket=PRIMARY, ObjectLockEnabledForBucket=True)
    setup.create_bucket(Bucket=COPY)
    env = _settings(own_moto)
    log = CallLog()
    client = _client(own_moto, log)
    kms = boto3.client(
        "kms", endpoint_url=own_moto.endpoint_url, region_name=own_moto.region,
        aws_access_key_id=own_moto.access_key, aws_secret_access_key=own_moto.secret_key)
    client_side = kms.create_key(Description="client-side")["KeyMetadata"]["Arn"]
    log.attach(kms)  # from here on: the code's calls only
    env.update(BACKUP_ENCRYPTION="kms", BACKUP_ENCRYPTION_KMS_KEY_ID=client_side)
    config, copy = BackupConfig.from_env(env), CopySettings.from_env(env)
    assert copy.storage is not None
    engine = engine_for(storage_from_config(config.storage, s3_client=client), catalog,
                        {"pg_source": source_conn}, config=config, copy=copy,
                        copy_storage=storage_from_config(copy.storage, s3_client=client),
                        keys=key_service(config.encryption, config.storage, kms=lambda: kms))
    now = datetime.now(UTC)
    old = layout.make_backup_id(now - timedelta(days=30), "least-privilege/old")
    new = layout.make_backup_id(now, "least-privilege/new")
    for backup_id in (old, new):
        engine.runner().run("pg_source", source_conn, RunContext(), backup_id)
        engine.copy_backup(backup_id)
    with catalog.cursor() as cur:  # the old one is 30 days old: retention wants it gone
        cur.execute("UPDATE backup_records SET started_at = started_at - interval '30 days' "
                    "WHERE id = %s", (old,))
    assert engine.verify(new).problems == ()
    pg_cluster.drop_database("least_privilege_restored")
    try:
        engine.restore_backup(new, "least_privilege_restored")
    finally:
        pg_cluster.drop_database("least_privilege_restored")
    engine.health()
    report = engine.retention().run(None, deleted_by="test")
    kept = {d.record.backup_id: d.reason for d in report.plan.kept}
    assert report.errors == [] and kept[old].startswith("under S3 Object Lock until")
    copy_report = engine.copy_retention("test", now=now + timedelta(days=1))
    assert copy_report.errors == [] and copy_report.removed == [old]
    with engine.storage.open_writer("database/pg_source/aborted", 20 * MIB) as writer:
        writer.write(os.urandom(9 * MIB))  # one part in flight, then the upload is given up
        writer.abort()
    segment = a_wal_segment(pg_cluster)
    archive = engine.wal_archive(WAL_TARGET)
    archive.push(segment, segment.name)
    archive.fetch(segment.name, tmp_path / segment.name)
    engine.wal_retention(WAL_TARGET)

    policy = published_policy()
    needs = log.needs()
    refused = sorted(f"{n.action} on {n.resource}" for n in needs
                     if not allowed(policy, n, kms_keys=(KMS_KEY, client_side)))
    assert refused == [], "calls outside the policy in docs/security.md"
    unused = actions_of(policy) - {n.action for n in needs}
    assert unused == set(), "the policy grants actions the code never uses"
    assert {"CreateMultipartUpload", "AbortMultipartUpload", "ListMultipartUploads",
            "GetObjectLockConfiguration", "ListObjectVersions"} <= log.operations
    assert {n for n, p in log.kms_calls if p["KeyId"] == client_side} == {
        "GenerateDataKey", "Decrypt"}  # backups and WAL sealed, verify/restore/fetch opened
