"""The dump starts while storage is checked in a thread (core/backup/admission.py): the record
is saved RUNNING by that thread as soon as storage answers, whatever the dump is doing, and a
refused backup records nothing, writes nothing and stops the dump it started."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import StepError, StorageNotReady
from amprenta_backup.core.models import RunContext, Status
from amprenta_backup.core.pgtools import PgConnInfo, tool
from amprenta_backup.core.storage.multipart import run_in_thread
from amprenta_backup.core.storage.s3 import LazyClient, S3Storage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.s3server import MotoServer
from tests.integration.conftest import conninfo
from tests.support.backups import SETTINGS
from tests.support.factories import restore_stored_dump

CLIENT_SECONDS = 1.5  # how long the S3 client takes to be made here
QUICK = dataclasses.replace(SETTINGS, heartbeat_timeout=timedelta(seconds=4))  # beats each 1 s


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


def _runner(storage: S3Storage, catalog: Catalog, conn: PgConnInfo, key: str,
            target: str = "pg_source", dump_jobs: int = 0) -> Callable[[], Any]:
    backup_id = layout.make_backup_id(datetime.now(UTC), key)
    settings = dataclasses.replace(QUICK, dump_jobs=dump_jobs)
    return lambda: BackupRunner(storage, catalog, settings).run(target, conn, RunContext(),
                                                                backup_id)


def _buckets(moto_server: MotoServer) -> list[str]:
    return [b["Name"] for b in moto_server.client().list_buckets()["Buckets"]]


def _left_in(moto_server: MotoServer, bucket: str) -> tuple[int, int]:
    """Objects and unfinished multipart uploads in ``bucket``."""
    client = moto_server.client()
    objects = client.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    return objects, len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def _our_pg_dumps() -> list[int]:
    """pg_dump children of this process still running."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
            ppid = int((cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"--format=custom" in argv:
            found.append(int(cmdline.parent.name))
    return found


def _eventually(check: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def _heartbeat(catalog: Catalog, target: str) -> datetime | None:
    with catalog.cursor() as cur:
        cur.execute("SELECT heartbeat_at FROM backup_records WHERE target = %s", (target,))
        row = cur.fetchone()
    return row["heartbeat_at"] if row else None


HOLDER = "lock-holder"


@pytest.fixture
def locked_db(pg_cluster: ClusterBase, fresh_db: Callable[[str], str]
              ) -> Iterator[tuple[PgConnInfo, threading.Event]]:
    """A database with table ``held`` (1000 rows) locked ACCESS EXCLUSIVE by another
    session (application_name HOLDER) until the event is set."""
    name = fresh_db("locked")
    pg_cluster.execute("CREATE TABLE held AS SELECT g AS n FROM generate_series(1, 1000) g",
                       name)
    release = threading.Event()
    locked = threading.Event()

    def hold() -> None:
        with psycopg.connect(**pg_cluster.conninfo(name), application_name=HOLDER) as db:
            db.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(60)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert locked.wait(10)
    yield conninfo(pg_cluster, name), release
    release.set()
    holder.join(10)


def _sessions(conn: PgConnInfo) -> list[tuple[str, str, str, str]]:
    """The server's other sessions in ``conn``'s database but the lock holder's, as
    (application, state, wait event type, query): what a backup has running there."""
    with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
        rows = db.execute(
            "SELECT application_name, coalesce(state, ''), coalesce(wait_event_type, ''), "
            "query FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND application_name <> %s", (HOLDER,)).fetchall()
    return [(str(a), str(s), str(w), str(q)) for a, s, w, q in rows]


# dump_jobs 0 reads table sizes first (that query waits on the lock), 1 goes to pg_dump
# (whose LOCK TABLE waits, and the row count's count(*) with it)
JOBS = pytest.mark.parametrize("jobs", [0, 1], ids=["sizes-first", "one-stream"])


@JOBS
def test_a_dump_waiting_on_a_lock_is_recorded_running_and_beats_until_it_completes(
    s3_storage: S3Storage, catalog: Catalog, locked_db: tuple[PgConnInfo, threading.Event],
    fresh_db: Callable[[str], str], jobs: int,
) -> None:
    conn, release = locked_db
    backup: Future[Any] = run_in_thread(
        _runner(s3_storage, catalog, conn, "locked", "pg_lk", jobs), "test-backup")
    running = _eventually(lambda: catalog.find(target="pg_lk"), 5)
    assert [r.status for r in running] == [Status.RUNNING]
    assert _eventually(lambda: _heartbeat(catalog, "pg_lk"), 5) is not None
    # the lock is still held: the backup waits on it, and its record is RUNNING meanwhile
    assert any(w == "Lock" for _, _, w, _ in _sessions(conn)), _sessions(conn)
    assert not backup.done()
    assert [r.status for r in catalog.find(target="pg_lk")] == [Status.RUNNING]
    release.set()
    manifest = backup.result(timeout=60)
    record = catalog.get(manifest.backup_id)
    assert record is not None and record.status == Status.COMPLETED
    assert manifest.table_counts["public.held"] == 1000
    restored = conn.with_database(fresh_db("unlocked"))
    restore_stored_dump(s3_storage, manifest, restored)
    with psycopg.connect(**restored.connect_kwargs()) as db:
        assert db.execute("SELECT count(*), sum(n) FROM held").fetchone() == (1000, 500500)


@JOBS
def test_a_missing_bucket_stops_a_dump_waiting_on_a_lock_and_records_nothing(
    moto_server: MotoServer, catalog: Catalog, locked_db: tuple[PgConnInfo, threading.Event],
    jobs: int,
) -> None:
    conn, _ = locked_db  # the lock stays held: the refusal must not wait for it
    # what waits on the lock: the sizes' query, or pg_dump's LOCK TABLE
    waiting = {0: "SELECT n.nspname, c.relname, pg_table_size", 1: "LOCK TABLE"}[jobs]

    def make() -> Any:  # storage answers once the backup waits on the lock
        seen.append(bool(_eventually(lambda: any(
            q.lstrip().startswith(waiting) and w == "Lock" for _, _, w, q in _sessions(conn)),
            30)))
        return moto_server.client()

    seen: list[bool] = []
    bucket = f"no-such-{os.urandom(3).hex()}"
    storage = S3Storage(LazyClient(make), bucket)
    with pytest.raises(StorageNotReady) as err:
        _runner(storage, catalog, conn, "locked-refused", "pg_lk", jobs)()
    assert seen == [True]
    assert "does not exist" in str(err.value) and "BACKUP_S3_BUCKET" in str(err.value)
    assert conn.password not in str(err.value)
    assert catalog.find(target="pg_lk") == []
    assert bucket not in _buckets(moto_server)  # nothing written, no bucket made
    assert _eventually(lambda: not _our_pg_dumps(), 5)
    # nothing of the backup is left on the server waiting on the lock
    assert _eventually(lambda: not _sessions(conn), 5), _sessions(conn)


def test_a_missing_bucket_stops_a_dump_in_its_copy_and_leaves_nothing(
    moto_server: MotoServer, catalog: Catalog, big_source_conn: PgConnInfo,
) -> None:
    """Storage answers while pg_dump's COPY streams (its first bytes held): the refusal
    ends pg_dump and the server's COPY, and nothing is recorded or written."""
    def copying() -> bool:
        return any(q.startswith("COPY") and s == "active"
                   for _, s, _, q in _sessions(big_source_conn))

    def make() -> Any:  # storage answers once the server streams the dump's COPY
        seen.append(bool(_eventually(copying, 30)))
        return moto_server.client()

    seen: list[bool] = []
    bucket = f"no-such-{os.urandom(3).hex()}"
    storage = S3Storage(LazyClient(make), bucket)
    with pytest.raises(StorageNotReady) as err:
        _runner(storage, catalog, big_source_conn, "copy-refused", "pg_big")()
    assert seen == [True]  # pg_dump was in its COPY when storage refused
    assert "does not exist" in str(err.value) and big_source_conn.password not in str(err.value)
    assert catalog.find(target="pg_big") == []
    assert bucket not in _buckets(moto_server)
    assert _eventually(lambda: not _our_pg_dumps(), 5)
    assert _eventually(lambda: not copying(), 5), _sessions(big_source_conn)
    assert _eventually(lambda: not _sessions(big_source_conn), 10), _sessions(big_source_conn)


def test_a_missing_bucket_stops_the_dump_already_started_and_records_nothing(
    moto_server: MotoServer, catalog: Catalog, source_conn: PgConnInfo, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage, _ = _early(moto_server, tmp_path, monkeypatch,
                        bucket=f"no-such-{os.urandom(3).hex()}")
    with pytest.raises(StorageNotReady) as err:
        _runner(storage, catalog, source_conn, "no-bucket")()
    assert "does not exist" in str(err.value) and "BACKUP_S3_BUCKET" in str(err.value)
    assert (tmp_path / "started").exists()  # the dump had started
    assert catalog.find(target="pg_source") == []
    assert _eventually(lambda: not _our_pg_dumps(), 5)  # and was stopped


def test_pg_dump_failing_while_the_s3_client_is_made_leaves_nothing_and_a_failed_record(
    moto_server: MotoServer, catalog: Catalog, source_conn: PgConnInfo, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage, made = _early(moto_server, tmp_path, monkeypatch, 'touch "$STARTED"\n'
                           'echo "pg_dump: error: query failed: lock timeout" >&2\nexit 1')
    with pytest.raises(StepError) as err:
        _runner(storage, catalog, source_conn, "early-fail")()
    assert err.value.step == "dump" and "lock timeout" in str(err.value)
    assert made and _before(tmp_path / "started", made[0])  # it failed before the client
    (record,) = catalog.find(target="pg_source")
    assert record.status == Status.FAILED and "step 'dump' failed" in (record.error or "")
    assert record.sha256 is None and record.manifest is None
    assert _left_in(moto_server, storage.bucket) == (0, 0)


def test_a_dump_started_before_the_client_is_stored_whole_with_its_checksum(
    moto_server: MotoServer, catalog: Catalog, big_source_conn: PgConnInfo, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dump streams (its first bytes held) while the client is made; nothing is lost."""
    storage, made = _early(moto_server, tmp_path, monkeypatch)
    manifest = _runner(storage, catalog, big_source_conn, "early-ok")()
    assert _before(tmp_path / "started", made[0])  # pg_dump ran first
    stored = storage.get_bytes(manifest.key)
    assert hashlib.sha256(stored).hexdigest() == manifest.sha256
    assert len(stored) == manifest.stored_bytes > 0
    record = catalog.get(manifest.backup_id)
    assert record is not None and record.status == Status.COMPLETED
    assert record.started_at == manifest.started_at <= manifest.completed_at
    assert record.sha256 == manifest.sha256 and sum(manifest.table_counts.values()) > 0


def test_a_completed_backup_id_stops_the_new_dump_and_keeps_the_stored_one(
    s3_storage: S3Storage, catalog: Catalog, locked_db: tuple[PgConnInfo, threading.Event],
) -> None:
    conn, release = locked_db
    release.set()
    run = _runner(s3_storage, catalog, conn, "done-once", "pg_lk")
    first = run()
    stored = _left_in_storage(s3_storage)
    again = run()
    assert again.sha256 == first.sha256 and _left_in_storage(s3_storage) == stored
    assert [r.status for r in catalog.find(target="pg_lk")] == [Status.COMPLETED]
    assert _eventually(lambda: not _our_pg_dumps(), 5)


def _left_in_storage(storage: S3Storage) -> list[tuple[str, int]]:
    return sorted((o.key, o.size) for o in storage.list_objects(""))
