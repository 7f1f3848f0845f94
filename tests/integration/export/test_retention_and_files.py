"""Retention applies to exports like backups (BACKUP_RETENTION_DAYS and BACKUP_KEEP_LAST);
files named by S3 keys are exported from an S3 endpoint."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.export.store import export_folder
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.s3server import MotoServer
from tests.integration.export.conftest import PROJECTS


def test_old_exports_are_removed_and_the_newest_kept(
        export_engine: Callable[..., BackupEngine], catalog: Catalog,
        local_storage: LocalStorage) -> None:
    engine = export_engine(file_columns=())
    old, new = (str(engine.create_project_export(project_ids=[PROJECTS[p]],
                                                 include_files=False)["export_id"])
                for p in ("A", "B"))
    with catalog.cursor() as cur:
        cur.execute("UPDATE exports SET started_at = now() - interval '400 days' WHERE id = %s",
                    (old,))
    exports, now = engine.project_exports(), catalog.now()
    assert exports.expire(BackupConfig(targets=(), keep_last=2), now).removed == []
    dry = exports.expire(BackupConfig(targets=()), now, dry_run=True)
    assert dry.removed == [old] and dry.kept == 1
    assert list(local_storage.list_objects(export_folder("database", old)))
    done = exports.expire(BackupConfig(targets=()), now)
    assert done.removed == [old] and done.bytes_freed > 0 and done.errors == []
    assert list(local_storage.list_objects(export_folder("database", old))) == []
    assert [(r.export_id, r.status) for r in exports.list()] == [(new, "completed"),
                                                                 (old, "deleted")]


def test_files_named_by_s3_keys_are_copied_in_with_their_checksums(
        export_engine: Callable[..., BackupEngine], moto_server: MotoServer,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """BACKUP_PROJECT_FILES_ROOT=s3://bucket/prefix: the documents' paths are keys there,
    read with BACKUP_AWS_CONN_ID's credentials (moto over HTTP)."""
    moto_server.create_bucket("project-files")
    client = moto_server.client()
    for n in range(3):
        client.put_object(Bucket="project-files", Key=f"uploads/A/exp{n}.txt",
                          Body=f"object {n} of A".encode())
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": moto_server.access_key,
        "password": moto_server.secret_key,
        "extra": {"endpoint_url": moto_server.endpoint_url,
                  "region_name": moto_server.region}}))
    engine = export_engine(files_root="s3://project-files/uploads")
    result = engine.create_project_export(project_ids=[PROJECTS["A"]])
    assert result["files"] == 3
    path = tmp_path / "a.zip"
    engine.project_exports().download(str(result["export_id"]), path)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert archive.read("files/A/exp1.txt") == b"object 1 of A"
    assert {f["value"]: f["file"]["sha256"] for f in manifest["files"]} == {
        f"A/exp{n}.txt": hashlib.sha256(f"object {n} of A".encode()).hexdigest()
        for n in range(3)}
    assert manifest["missing_files"] == []
