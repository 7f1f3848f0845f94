"""Base backups of an archiving cluster into moto's S3, complete once their WAL is archived."""

from __future__ import annotations

import io
import json
import signal
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import PreconditionError, StepError
from amprenta_backup.core.models import RunContext, Status, utcnow
from amprenta_backup.core.pitr.basebackup import BASE_NAME, BaseBackupRunner
from amprenta_backup.core.readback import download_object
from amprenta_backup.core.verify import verify_backup
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.ranges import WalRange
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.s3server import MotoServer
from tests.integration.conftest import conninfo
from tests.support.signals import SignalOnFirstWrite, Terminated, sigterm_raises_terminated
from tests.support.wal import PREFIX, WalSetup, start_archiving_cluster

TARGET = "pg_main.pitr"


@pytest.fixture(scope="module")
def wal(moto_server: MotoServer) -> Iterator[WalSetup]:
    setup = start_archiving_cluster(moto_server, moto_server.create_bucket("basebackups"),
                                    TARGET)
    try:
        setup.cluster.execute("CREATE TABLE before_backup AS SELECT g AS id FROM "
                              "generate_series(1, 5000) g")
        yield setup
    finally:
        setup.stop()


def runner(wal: WalSetup, catalog: Catalog) -> BaseBackupRunner:
    return BaseBackupRunner(wal.archive.storage, catalog, PREFIX)


def take(wal: WalSetup, catalog: Catalog) -> tuple[BaseBackupRunner, str, object]:
    backup_id = layout.make_backup_id(utcnow())
    bb = runner(wal, catalog)
    manifest = bb.take(TARGET, conninfo(wal.cluster, "postgres"), RunContext(), backup_id)
    return bb, backup_id, manifest


def test_a_base_backup_counts_once_its_stop_segment_is_archived(
        wal: WalSetup, catalog: Catalog) -> None:
    bb, backup_id, manifest = take(wal, catalog)
    record = catalog.get(backup_id)
    assert record is not None and record.status == Status.RUNNING and record.kind == "physical"
    folder = layout.backup_folder(PREFIX, TARGET, backup_id)
    storage = wal.archive.storage
    assert not storage.exists(layout.manifest_key(folder))  # not before the WAL is archived
    wal_range = WalRange.of(manifest)  # type: ignore[arg-type]
    assert wal.archive.wait_for(wal_range.stop_segment, timeout=60, poll=0.2)
    bb.complete(manifest, wal.archive)  # type: ignore[arg-type]

    record = catalog.get(backup_id)
    assert record is not None and record.status == Status.COMPLETED
    stored = json.loads(storage.get_bytes(layout.manifest_key(folder)))
    assert stored["kind"] == "physical" and stored["format"] == "pg_basebackup-tar"
    assert stored["wal"]["timeline"] == 1
    assert stored["wal"]["stop_segment"] == wal_range.stop_segment
    pg_manifest = json.loads(storage.get_bytes(f"{folder}/backup_manifest"))
    assert pg_manifest["WAL-Ranges"][0]["End-LSN"] == wal_range.stop_lsn
    # the stored tar is a whole data directory with its WAL and backup_label
    data = storage.get_bytes(f"{folder}/base.tar.zst")
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    assert len(data) == stored["stored_bytes"]
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
        names = set(tar.getnames())
    # raw_bytes: the data directory's files, as backup_manifest lists them (WAL left out),
    # learnt without decompressing while the backup was taken
    files = sum(m.size for m in members if m.isreg() and not m.name.startswith("pg_wal/"))
    assert stored["raw_bytes"] == files == sum(f["Size"] for f in pg_manifest["Files"])
    assert {"PG_VERSION", "backup_label", "global/pg_control"} <= names
    assert any(n.startswith("pg_wal/") and n.endswith(wal_range.start_segment) for n in names)


def test_the_verify_of_weekly_verify_accepts_a_base_backup(wal: WalSetup, catalog: Catalog,
                                                          tmp_path: Path) -> None:
    bb, backup_id, manifest = take(wal, catalog)
    assert wal.archive.wait_for(WalRange.of(manifest).stop_segment, 60, 0.2)  # type: ignore[arg-type]
    bb.complete(manifest, wal.archive)  # type: ignore[arg-type]
    record = catalog.get(backup_id)
    assert record is not None
    result = verify_backup(wal.archive.storage, catalog, record)
    assert result.ok, result.problems
    assert "tar" in result.checked
    assert catalog.get(backup_id).status == Status.VERIFIED  # type: ignore[union-attr]
    # `amprenta-backup download` of it writes the whole tar (its raw_bytes are the files')
    path = tmp_path / "base.tar"
    download_object(wal.archive.storage, manifest, path)  # type: ignore[arg-type]
    with tarfile.open(path) as tar:
        assert {"PG_VERSION", "backup_label"} <= set(tar.getnames())
    # a manifest whose raw size the tar's files do not add up to is CORRUPT, in words
    storage = wal.archive.storage
    key = layout.manifest_key(layout.folder_of(manifest.key))  # type: ignore[attr-defined]
    forged = json.loads(storage.get_bytes(key))
    forged["raw_bytes"] += 512
    storage.put_bytes(key, json.dumps(forged).encode())
    result = verify_backup(storage, catalog, record)
    assert not result.ok
    assert any(f"the manifest says {forged['raw_bytes']}" in p and "bytes of files" in p
               for p in result.problems), result.problems
    assert catalog.get(backup_id).status == Status.CORRUPT  # type: ignore[union-attr]


def test_a_backup_whose_wal_never_arrives_fails_with_the_reason(wal: WalSetup,
                                                               catalog: Catalog) -> None:
    bb, backup_id, manifest = take(wal, catalog)
    elsewhere = WalArchive(wal.archive.storage, PREFIX, "another.cluster")
    with pytest.raises(PreconditionError, match=r"never reached the archive.*archive_command"):
        bb.complete(manifest, elsewhere)  # type: ignore[arg-type]
    record = catalog.get(backup_id)
    assert record is not None and record.status == Status.FAILED
    assert "pg_stat_archiver" in (record.error or "")
    folder = layout.backup_folder(PREFIX, TARGET, backup_id)
    assert not wal.archive.storage.exists(layout.manifest_key(folder))


def test_a_server_that_does_not_archive_is_refused(pg_cluster: ClusterBase,
                                                   catalog: Catalog, wal: WalSetup) -> None:
    """The session cluster runs with archive_mode off."""
    bb = runner(wal, catalog)
    backup_id = layout.make_backup_id(utcnow())
    with pytest.raises(StepError, match=r"archive_mode is off .*archive_command"):
        bb.take(TARGET, conninfo(pg_cluster, "postgres"), RunContext(), backup_id)
    record = catalog.get(backup_id)
    assert record is not None and record.status == Status.FAILED
    assert record.error is not None and "preflight" in record.error


def test_pg_basebackup_errors_reach_the_record(wal: WalSetup, catalog: Catalog) -> None:
    """A role without REPLICATION passes the preflight query; pg_basebackup itself refuses."""
    wal.cluster.execute("DROP ROLE IF EXISTS no_repl; "
                        "CREATE ROLE no_repl LOGIN NOREPLICATION PASSWORD 'pw-no-repl'")
    conn = conninfo(wal.cluster, "postgres")
    plain = type(conn)(host=conn.host, port=conn.port, user="no_repl", dbname="postgres",
                       password="pw-no-repl")
    backup_id = layout.make_backup_id(utcnow())
    with pytest.raises(StepError, match=r"pg_basebackup exited with code 1: .*replication"):
        runner(wal, catalog).take(TARGET, plain, RunContext(), backup_id)
    record = catalog.get(backup_id)
    assert record is not None and record.status == Status.FAILED
    assert "pw-no-repl" not in (record.error or "")
    folder = layout.backup_folder(PREFIX, TARGET, backup_id)
    assert not list(wal.archive.storage.list_objects(folder + "/"))


@pytest.mark.parametrize(("signum", "raised", "name"), [
    (signal.SIGINT, KeyboardInterrupt, "KeyboardInterrupt"),
    (signal.SIGTERM, Terminated, "Terminated"),
])
def test_a_base_backup_interrupted_mid_copy_is_recorded_failed_naming_the_step(
        wal: WalSetup, catalog: Catalog, signum: int, raised: type[BaseException],
        name: str) -> None:
    """A real signal while pg_basebackup streams: never left RUNNING, nothing stored."""
    storage: Any = SignalOnFirstWrite(wal.archive.storage, BASE_NAME, signum)
    backup_id = layout.make_backup_id(utcnow())
    with sigterm_raises_terminated(), pytest.raises(raised):
        BaseBackupRunner(storage, catalog, PREFIX).take(
            TARGET, conninfo(wal.cluster, "postgres"), RunContext(), backup_id)
    record = catalog.get(backup_id)
    assert record is not None and record.status == Status.FAILED
    assert f"step 'pg_basebackup' failed: {name}" in (record.error or "")
    folder = layout.backup_folder(PREFIX, TARGET, backup_id)
    assert not list(wal.archive.storage.list_objects(folder + "/"))
