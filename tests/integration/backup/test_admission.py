"""The dump starts while the S3 client is still being made (core/backup/admission.py): the
backup is recorded, and anything written, only once storage has answered."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import StepError, StorageNotReady
from amprenta_backup.core.models import RunContext, Status
from amprenta_backup.core.pgtools import PgConnInfo, tool
from amprenta_backup.core.pipeline import Compression
from amprenta_backup.core.storage.s3 import LazyClient, S3Storage
from amprenta_backup.sandbox.s3server import MotoServer

SETTINGS = BackupSettings(prefix="database/", compression=Compression())
CLIENT_SECONDS = 1.5  # how long the S3 client takes to be made here


def _slow_client(moto_server: MotoServer, made: list[float]) -> LazyClient:
    """The moto endpoint's real client, made CLIENT_SECONDS after it is first asked for
    (a slow botocore import on a busy host); ``made`` gets the time it was ready."""
    def make() -> Any:
        time.sleep(CLIENT_SECONDS)
        client = moto_server.client()
        made.append(time.monotonic())
        return client
    return LazyClient(make)


def _pg_dump_bin(tmp_path: Path, body: str) -> Path:
    """A bin folder whose ``pg_dump`` runs ``body`` for a dump (its ``--version`` and the
    other tools are the real ones); ``$STARTED`` is a file it may touch."""
    folder = tmp_path / "bin"
    folder.mkdir()
    real = tool("pg_dump")
    script = folder / "pg_dump"
    script.write_text(f'#!/bin/sh\nSTARTED="{tmp_path}/started"\n'
                      f'[ "$1" = "--version" ] && exec {real} "$@"\n{body}\n')
    script.chmod(0o755)
    for sibling in ("pg_dumpall", "pg_restore"):
        (folder / sibling).symlink_to(Path(real).parent / sibling)
    return folder


REAL_DUMP = 'touch "$STARTED"\nexec {pg_dump} "$@"'


def _early(moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           body: str = REAL_DUMP, bucket: str | None = None) -> tuple[S3Storage, list[float]]:
    """S3 storage on a new bucket (or ``bucket``) whose client is slow to make, and a
    ``pg_dump`` running ``body``; the list gets the time the client was ready."""
    made: list[float] = []
    name = bucket or moto_server.create_bucket(f"early-{os.urandom(3).hex()}")
    monkeypatch.setenv("AMPRENTA_PG_BINDIR", str(_pg_dump_bin(
        tmp_path, body.format(pg_dump=tool("pg_dump")))))
    return S3Storage(_slow_client(moto_server, made), name), made


def _before(path: Path, monotonic: float) -> bool:
    """Whether ``path`` was last touched before the ``time.monotonic()`` reading given."""
    return path.stat().st_mtime < time.time() - (time.monotonic() - monotonic)


def _run(storage: S3Storage, catalog: Catalog, conn: PgConnInfo, key: str) -> Callable[[], Any]:
    backup_id = layout.make_backup_id(datetime.now(UTC), key)
    return lambda: BackupRunner(storage, catalog, SETTINGS).run("pg_source", conn,
                                                                RunContext(), backup_id)


def _left_in(moto_server: MotoServer, bucket: str) -> tuple[int, int]:
    """Objects and unfinished multipart uploads in ``bucket``."""
    client = moto_server.client()
    objects = client.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    return objects, len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_pg_dump_failing_while_the_s3_client_is_made_leaves_nothing_and_a_failed_record(
    moto_server: MotoServer, catalog: Catalog, source_conn: PgConnInfo, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage, made = _early(moto_server, tmp_path, monkeypatch, 'touch "$STARTED"\n'
                           'echo "pg_dump: error: query failed: lock timeout" >&2\nexit 1')
    with pytest.raises(StepError) as err:
        _run(storage, catalog, source_conn, "early-fail")()
    assert err.value.step == "dump" and "lock timeout" in str(err.value)
    assert made and _before(tmp_path / "started", made[0])  # it failed before the client
    (record,) = catalog.find(target="pg_source")
    assert record.status == Status.FAILED and "step 'dump' failed" in (record.error or "")
    assert record.sha256 is None and record.manifest is None
    assert _left_in(moto_server, storage.bucket) == (0, 0)


def test_a_missing_bucket_stops_the_dump_already_started_and_records_nothing(
    moto_server: MotoServer, catalog: Catalog, source_conn: PgConnInfo, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage, _ = _early(moto_server, tmp_path, monkeypatch,
                        bucket=f"no-such-{os.urandom(3).hex()}")
    with pytest.raises(StorageNotReady) as err:
        _run(storage, catalog, source_conn, "no-bucket")()
    assert "does not exist" in str(err.value) and "BACKUP_S3_BUCKET" in str(err.value)
    assert (tmp_path / "started").exists()  # the dump had started
    assert catalog.find(target="pg_source") == []
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline")
                if _is_our_pg_dump(p)]  # and was stopped


def _is_our_pg_dump(cmdline: Path) -> bool:
    try:
        argv = cmdline.read_bytes().split(b"\0")
        ppid = int((cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return False
    return ppid == os.getpid() and b"--format=custom" in argv


def test_a_dump_started_before_the_client_is_stored_whole_with_its_checksum(
    moto_server: MotoServer, catalog: Catalog, big_source_conn: PgConnInfo, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dump streams (its first bytes held) while the client is made; nothing is lost."""
    storage, made = _early(moto_server, tmp_path, monkeypatch)
    manifest = _run(storage, catalog, big_source_conn, "early-ok")()
    assert _before(tmp_path / "started", made[0])  # pg_dump ran first
    stored = storage.get_bytes(manifest.key)
    assert hashlib.sha256(stored).hexdigest() == manifest.sha256
    assert len(stored) == manifest.stored_bytes > 0
    record = catalog.get(manifest.backup_id)
    assert record is not None and record.status == Status.COMPLETED
    assert record.sha256 == manifest.sha256 and sum(manifest.table_counts.values()) > 0
