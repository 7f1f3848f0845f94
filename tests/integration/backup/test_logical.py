"""Backups of a real database into real storage, restored and compared with the source."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import StepError, StorageError
from amprenta_backup.core.models import BackupRecord, Manifest, RunContext, Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pipeline import Compression
from amprenta_backup.core.storage import S3Storage, Storage
from amprenta_backup.sandbox.compare import assert_databases_equal
from amprenta_backup.sandbox.s3server import MotoServer
from tests.support.factories import restore_stored_dump
from tests.support.signals import SignalOnFirstWrite, Terminated, sigterm_raises_terminated

SETTINGS = BackupSettings(prefix="database/", compression=Compression())


def _backup_id(key: str) -> str:
    return layout.make_backup_id(datetime.now(UTC), key)


def _fails_at(step: str, storage: Storage, catalog: Catalog, target: str, conn: PgConnInfo,
              settings: BackupSettings = SETTINGS) -> tuple[StepError, BackupRecord]:
    """Run a backup of ``target`` that must fail at ``step``: its StepError, and its catalog
    record, FAILED and naming the step."""
    with pytest.raises(StepError) as err:
        BackupRunner(storage, catalog, settings).run(target, conn, RunContext(), _backup_id(step))
    assert err.value.step == step
    (record,) = catalog.find(target=target)
    assert record.status == Status.FAILED and f"step '{step}'" in (record.error or "")
    return err.value, record


def _retried(storage: Storage, catalog: Catalog, conn: PgConnInfo, run_key: str,
             between: Callable[[str], None] = lambda backup_id: None,
             ) -> tuple[str, Manifest, Manifest]:
    """A retry of one Airflow run: ``pg_source`` backed up twice under one backup id, with
    ``between(backup_id)`` in between; the id and both manifests."""
    runner = BackupRunner(storage, catalog, SETTINGS)
    backup_id = _backup_id(run_key)
    first = runner.run("pg_source", conn, RunContext(), backup_id)
    between(backup_id)
    return backup_id, first, runner.run("pg_source", conn, RunContext(), backup_id)


def _children_running(*argv_part: str) -> list[int]:
    """Pids of this process's direct children whose argv contains ``argv_part`` (/proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            argv = (stat.parent / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and all(part in argv for part in argv_part):
            found.append(int(stat.parent.name))
    return found


def _objects(storage: Storage) -> list[str]:
    """The backups' objects; the globals under ``_globals/`` are checked on their own."""
    return sorted(o.key for o in storage.list_objects() if "/_globals/" not in o.key)


@pytest.mark.parametrize("storage_kind", ["local", "s3"])
def test_round_trip_restores_rows_and_schema_exactly(
    request: pytest.FixtureRequest, storage_kind: str, source_conn: PgConnInfo,
    catalog: Catalog, pg_cluster, fresh_db,
) -> None:
    storage: Storage = request.getfixturevalue(f"{storage_kind}_storage")
    runner = BackupRunner(storage, catalog, SETTINGS)
    manifest = runner.run("pg_source", source_conn, RunContext(), _backup_id(storage_kind))

    record = catalog.get(manifest.backup_id)
    assert record is not None and record.status == Status.COMPLETED
    assert record.sha256 == manifest.sha256 and record.stored_bytes == manifest.stored_bytes
    folder = layout.backup_folder("database", "pg_source", manifest.backup_id)
    assert _objects(storage) == [f"{folder}/dump.pgc.zst", f"{folder}/manifest.json"]
    stored = Manifest.from_json(storage.get_bytes(f"{folder}/manifest.json"))
    assert stored.table_counts == manifest.table_counts
    assert stored.table_counts['"données"."café"'] > 0
    assert stored.table_counts["billing.invoices_2025"] > 0
    assert stored.raw_bytes > stored.stored_bytes > 0
    globals_ref = stored.globals_ref()
    assert globals_ref is not None and globals_ref.role_passwords
    assert storage.exists(globals_ref.key) and globals_ref.key.startswith("database/_globals/")
    assert stored.properties is not None and stored.properties["name"] == source_conn.dbname

    target = fresh_db("restored")
    restore_stored_dump(storage, manifest, source_conn.with_database(target))
    assert_databases_equal(source_conn.env(), source_conn.dbname,
                           source_conn.env(), target)


def test_retry_of_the_same_run_leaves_one_completed_backup(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    backup_id, first, again = _retried(local_storage, catalog, source_conn,
                                       "daily_backup/scheduled__x/pg_source")
    assert again.sha256 == first.sha256 and again.completed_at == first.completed_at
    assert [r.backup_id for r in catalog.find(target="pg_source")] == [backup_id]
    assert len(_objects(local_storage)) == 2


def test_wrong_password_fails_at_connect_and_never_leaks(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Wr0ng-Pa55word-XYZ"
    bad = PgConnInfo(source_conn.host, source_conn.port, source_conn.user,
                     source_conn.dbname, password=secret)
    error, record = _fails_at("connect", local_storage, catalog, "pg_source", bad)
    assert "password authentication failed" in str(error)
    assert _objects(local_storage) == []
    assert secret not in caplog.text and secret not in str(error)
    assert secret not in (record.error or "")


def test_missing_database_fails_and_offers_nothing(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    error, _ = _fails_at("connect", local_storage, catalog, "pg_missing",
                         source_conn.with_database("no_such_db"))
    assert 'database "no_such_db" does not exist' in str(error)
    assert _objects(local_storage) == []


def test_missing_bucket_is_refused_before_anything_is_written(
    moto_server: MotoServer, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    storage = S3Storage(moto_server.client(), "no-such-bucket")
    with pytest.raises(StorageError, match="BACKUP_S3_BUCKET"):
        BackupRunner(storage, catalog, SETTINGS).run(
            "pg_source", source_conn, RunContext(), _backup_id("b"))
    assert catalog.find() == []


def test_endpoint_gone_mid_upload_aborts_and_marks_failed(
    catalog: Catalog, big_source_conn: PgConnInfo,
) -> None:
    """The S3 server process is frozen (SIGSTOP) for real while parts are in flight.

    Part uploads time out, the backup fails at 'upload', and once the endpoint answers again
    the multipart upload is aborted: no object and no pending upload is left behind.
    """
    server = MotoServer().start()
    try:
        server.create_bucket("mid-upload")
        client = server.client(read_timeout=1, connect_timeout=1,
                               retries={"max_attempts": 1, "mode": "standard"})
        storage = S3Storage(client, "mid-upload", part_size=5 * 1024 * 1024)
        original = client.upload_part
        parts: list[int] = []

        def upload_part(**kwargs):  # the real call; the 2nd part freezes the server first
            parts.append(kwargs["PartNumber"])
            if len(parts) == 2:
                server.pause()
                threading.Timer(6, server.resume).start()
            return original(**kwargs)

        client.upload_part = upload_part
        settings = BackupSettings(prefix="database/", compression=Compression(level=1))
        error, _ = _fails_at("upload", storage, catalog, "pg_big", big_source_conn, settings)
        assert "mid-upload" in str(error)
        server.resume()
        check = server.client()
        left = check.list_objects_v2(Bucket="mid-upload").get("Contents", [])
        assert [o["Key"] for o in left if "/_globals/" not in o["Key"]] == []
        assert check.list_multipart_uploads(Bucket="mid-upload").get("Uploads", []) == []
    finally:
        server.resume()
        server.stop()


def test_pg_dump_killed_mid_stream_leaves_no_object(
    local_storage: Storage, catalog: Catalog, big_source_conn: PgConnInfo,
) -> None:
    """pg_dump is killed for real partway through; nothing is offered as a backup."""
    def kill_pg_dump() -> None:  # only our own child: other pg_dumps on the host live on
        for _ in range(500):
            for pid in _children_running("--format=custom"):
                os.kill(pid, signal.SIGKILL)
                return
            threading.Event().wait(0.01)

    killer = threading.Thread(target=kill_pg_dump)
    killer.start()
    try:
        _fails_at("dump", local_storage, catalog, "pg_big", big_source_conn)
    finally:
        killer.join()
    assert _objects(local_storage) == []


def test_catalog_is_rebuilt_from_manifests(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo, fresh_catalog,
) -> None:
    runner = BackupRunner(local_storage, catalog, SETTINGS)
    ids = {runner.run("pg_source", source_conn, RunContext(), _backup_id(f"r{i}")).backup_id
           for i in range(2)}
    local_storage.put_bytes("database/pg_source/2026/01/01/20260101T000000Z-00000000/dump.pgc.zst",
                            b"no manifest: incomplete")
    rebuilt = fresh_catalog()
    assert rebuilt.rebuild(local_storage, "database/") == 2
    assert {r.backup_id for r in rebuilt.find()} == ids
    assert all(r.status == Status.COMPLETED and r.manifest for r in rebuilt.find())


def test_an_unexpected_fault_still_marks_the_backup_failed(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pg_dump exists but cannot be executed: an OSError, not a BackupError."""
    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "pg_dump").write_text("not a program")  # mode 0644: PermissionError on exec
    monkeypatch.setenv("AMPRENTA_PG_BINDIR", str(broken))
    try:
        with pytest.raises(PermissionError):
            BackupRunner(local_storage, catalog, SETTINGS).run(
                "pg_source", source_conn, RunContext(), _backup_id("oserror"))
    finally:
        monkeypatch.delenv("AMPRENTA_PG_BINDIR")
    (record,) = catalog.find(target="pg_source")
    assert record.status == Status.FAILED
    assert "step 'preflight' failed: PermissionError" in (record.error or "")
    assert _objects(local_storage) == []


def test_a_retry_trusts_the_manifest_in_storage_over_a_lost_record(
    local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    """The record of a finished backup was lost (catalog down at the final save)."""
    def lose_the_record(backup_id: str) -> None:
        with catalog.cursor() as cur:
            cur.execute("DELETE FROM backup_records WHERE id = %s", (backup_id,))

    backup_id, first, again = _retried(local_storage, catalog, source_conn,
                                       "daily_backup/scheduled__y/pg_source", lose_the_record)
    assert again.sha256 == first.sha256
    record = catalog.get(backup_id)
    assert record is not None and record.status == Status.COMPLETED
    assert record.sha256 == first.sha256
    assert len(_objects(local_storage)) == 2


@pytest.mark.parametrize(("signum", "raised", "name"), [
    (signal.SIGINT, KeyboardInterrupt, "KeyboardInterrupt"),
    (signal.SIGTERM, Terminated, "Terminated"),
])
def test_a_backup_interrupted_mid_dump_is_recorded_failed_naming_the_step(
    local_storage: Storage, catalog: Catalog, big_source_conn: PgConnInfo, signum: int,
    raised: type[BaseException], name: str,
) -> None:
    """A real signal while pg_dump streams: Ctrl-C, or SIGTERM raised as a BaseException."""
    storage: Any = SignalOnFirstWrite(local_storage, "dump.pgc.zst", signum)
    backup_id = _backup_id(f"interrupted-{name}")
    with sigterm_raises_terminated(), pytest.raises(raised):
        BackupRunner(storage, catalog, SETTINGS).run("pg_big", big_source_conn, RunContext(),
                                                     backup_id)
    record = catalog.get(backup_id)
    assert record is not None and record.status == Status.FAILED
    assert f"step 'dump' failed: {name}" in (record.error or "")
    assert record.completed_at is not None
    assert _objects(local_storage) == []  # the partial dump was aborted
    assert _children_running("--format=custom") == []  # pg_dump was stopped, not left behind
