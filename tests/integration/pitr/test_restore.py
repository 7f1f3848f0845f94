"""Point-in-time restores of a real archiving cluster from moto's S3: rows before T are back,
rows after T are not; missing and damaged WAL stop the restore with a clear message."""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import ConfigError, PreconditionError, RestoreError
from amprenta_backup.core.models import Manifest, RunContext, utcnow
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pitr.basebackup import BaseBackupRunner
from amprenta_backup.core.pitr.localserver import LocalServer, free_port, server_user
from amprenta_backup.core.pitr.restore import (
    PitrReport,
    PitrRequest,
    PitrRestore,
    choose_base_backup,
)
from amprenta_backup.core.wal.archive import WalArchive, checksum_key
from amprenta_backup.core.wal.ranges import WalRange
from amprenta_backup.sandbox.s3server import MotoServer
from tests.integration.conftest import conninfo
from tests.support.wal import PREFIX, WalSetup, scratch_parent, start_archiving_cluster

TARGET = "pg_src.pitr"
KEYS = ("BACKUP_STORAGE_TYPE", "BACKUP_S3_BUCKET", "BACKUP_S3_PREFIX", "BACKUP_S3_ENDPOINT_URL",
        "BACKUP_S3_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass
class History:
    """An archiving cluster with a base backup, then rows written before and after ``t``."""

    wal: WalSetup
    catalog: Catalog
    manifest: Manifest
    t: datetime
    parent: Path

    def restorer(self, archive: WalArchive | None = None) -> PitrRestore:
        env = {k: self.wal.settings[k] for k in KEYS}
        return PitrRestore(self.wal.archive.storage, archive or self.wal.archive,
                           self.wal.command, env, server_user("postgres"))

    def request(self, name: str, target: str | datetime) -> PitrRequest:
        when = target if isinstance(target, str) else target.isoformat()
        return PitrRequest.parse(when, str(self.parent / name), free_port())

    @property
    def conn(self) -> PgConnInfo:
        return conninfo(self.wal.cluster, "postgres")


@pytest.fixture(scope="module")
def history(moto_server: MotoServer) -> Iterator[History]:
    # a bucket of its own each time: tests/faults shares this fixture in the same session
    bucket = moto_server.create_bucket(f"pitr-src-{secrets.token_hex(4)}")
    wal = start_archiving_cluster(moto_server, bucket, TARGET)
    parent = scratch_parent()
    try:
        wal.cluster.execute("CREATE DATABASE pitr_catalog")
        catalog = Catalog(conninfo(wal.cluster, "pitr_catalog"))
        wal.cluster.execute("CREATE TABLE marks (phase text, n int, at timestamptz "
                            "DEFAULT clock_timestamp()); INSERT INTO marks SELECT "
                            "'before-backup', g FROM generate_series(1, 100) g")
        runner = BaseBackupRunner(wal.archive.storage, catalog, PREFIX)
        manifest = runner.take(TARGET, conninfo(wal.cluster, "postgres"), RunContext(),
                               layout.make_backup_id(utcnow()))
        assert wal.archive.wait_for(WalRange.of(manifest).stop_segment, 60, 0.2)
        runner.complete(manifest, wal.archive)
        wal.cluster.execute("INSERT INTO marks SELECT 'before', g FROM generate_series(1, 1000) g")
        wal.switch_wal()  # one full segment between the backup and T, for the gap tests
        wal.cluster.execute("INSERT INTO marks SELECT 'before', g FROM generate_series(1001, "
                            "1500) g")
        time.sleep(1)
        t = wal.cluster.query("SELECT clock_timestamp()")[0][0]
        time.sleep(1)
        wal.cluster.execute("INSERT INTO marks SELECT 'after', g FROM generate_series(1, 700) g")
        wal.switch_wal()
        yield History(wal, catalog, manifest, t, parent)
    finally:
        wal.stop()
        shutil.rmtree(parent, ignore_errors=True)


def counts(port: int, conn: PgConnInfo) -> dict[str, int]:
    with psycopg.connect(host="127.0.0.1", port=port, user=conn.user, password=conn.password,
                         dbname="postgres") as db:
        rows = db.execute("SELECT phase, count(*) FROM marks GROUP BY phase").fetchall()
        assert db.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        db.execute("CREATE TABLE written_after_restore (x int)")  # the copy is writable
    return {str(phase): int(n) for phase, n in rows}


def stop(report: PitrReport) -> None:
    LocalServer(Path(report.data_dir), server_user("postgres"),
                Path(report.data_dir + ".pitr.log")).stop()
    shutil.rmtree(report.data_dir, ignore_errors=True)


def copy_archive(history: History, target: str) -> WalArchive:
    """The WAL archive copied under another target, to damage without harming the others."""
    source = history.wal.archive
    copy = WalArchive(source.storage, PREFIX, target)
    for name in source.list_names():
        key = source.key(name)
        copy.storage.put_bytes(copy.key(name), source.storage.get_bytes(key))
        copy.storage.put_bytes(checksum_key(copy.key(name)),
                               source.storage.get_bytes(checksum_key(key)))
    return copy


def between(history: History) -> str:
    """A segment archived after the base backup and before T."""
    stop_segment = WalRange.of(history.manifest).stop_segment
    names = [n for n in history.wal.archive.list_names("00000001") if len(n) == 24]
    return next(n for n in names if n > stop_segment)


def test_restore_to_t_brings_back_the_rows_before_and_none_after(history: History) -> None:
    report = history.restorer().run(history.manifest, history.request("to_t", history.t),
                                    history.conn)
    try:
        assert counts(report.port, history.conn) == {"before-backup": 100, "before": 1500}
        assert report.recovered_to is not None and report.recovered_to <= history.t
        assert 0 <= report.achieved_rpo_seconds < 2  # type: ignore[operator]
        assert report.timeline == 2 and report.backup_id == history.manifest.backup_id
        assert set(report.steps) == {"fetch_and_extract", "pg_verifybackup", "recovery"}
        auto = (Path(report.data_dir) / "postgresql.auto.conf").read_text().splitlines()
        settings = dict(line.split(" = ", 1) for line in auto if " = " in line)
        assert settings["archive_mode"] == "'off'"  # a copy never archives into production
        assert "restore_command" not in settings and "recovery_target_time" not in settings, auto
        assert not list(Path(report.data_dir).glob("recovery.signal"))
    finally:
        stop(report)


def test_restore_to_latest_replays_every_archived_segment(history: History) -> None:
    report = history.restorer().run(history.manifest, history.request("latest", "latest"),
                                    history.conn)
    try:
        assert counts(report.port, history.conn) == {"before-backup": 100, "before": 1500,
                                                     "after": 700}
        assert report.target_time is None and report.recovered_to is not None
    finally:
        stop(report)


def test_the_catalog_picks_the_newest_base_backup_that_ended_before_t(history: History) -> None:
    chosen = choose_base_backup(history.catalog, history.wal.archive.storage, TARGET, history.t)
    assert chosen.backup_id == history.manifest.backup_id
    early = WalRange.of(history.manifest).stop_time - timedelta(seconds=1)
    with pytest.raises(PreconditionError, match="before the end of the earliest base backup"):
        choose_base_backup(history.catalog, history.wal.archive.storage, TARGET, early)


def test_a_missing_segment_stops_the_restore_and_names_it(history: History) -> None:
    archive = copy_archive(history, "gap.pitr")
    missing = between(history)
    archive.storage.delete([archive.key(missing), checksum_key(archive.key(missing))])
    request = history.request("gap", history.t)
    with pytest.raises(RestoreError) as raised:
        history.restorer(archive).run(history.manifest, request, history.conn)
    text = str(raised.value)
    assert "recovery ended before configured recovery target was reached" in text
    assert f"did not find: {missing}" in text
    assert not request.data_dir.exists()


def test_a_missing_segment_is_a_gap_even_for_latest(history: History) -> None:
    archive = copy_archive(history, "gap2.pitr")
    missing = between(history)
    archive.storage.delete([archive.key(missing), checksum_key(archive.key(missing))])
    request = history.request("gap_latest", "latest")
    with pytest.raises(RestoreError, match=r"WAL segment \w{24} is missing .* later segments"):
        history.restorer(archive).run(history.manifest, request, history.conn)
    assert not request.data_dir.exists()


def test_a_damaged_segment_aborts_recovery_instead_of_ending_it_early(history: History) -> None:
    archive = copy_archive(history, "damaged.pitr")
    damaged = between(history)
    stored = bytearray(archive.storage.get_bytes(archive.key(damaged)))
    stored[len(stored) // 2] ^= 0xFF
    archive.storage.put_bytes(archive.key(damaged), bytes(stored))
    request = history.request("damaged", "latest")
    with pytest.raises(RestoreError) as raised:
        history.restorer(archive).run(history.manifest, request, history.conn)
    assert f"{damaged}" in str(raised.value) and "cannot be used for recovery" in str(raised.value)
    assert not request.data_dir.exists()


def test_a_used_directory_or_port_is_refused_before_anything_is_written(
        history: History) -> None:
    busy = history.parent / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(PreconditionError, match="exists and is not empty"):
        history.restorer().run(history.manifest,
                               PitrRequest.parse("latest", str(busy), free_port()), history.conn)
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(PreconditionError, match=f"port {history.wal.cluster.port} is already"):
        history.restorer().run(history.manifest, PitrRequest.parse(
            "latest", str(history.parent / "p"), history.wal.cluster.port), history.conn)


@pytest.mark.parametrize(("when", "message"), [
    ("2026-11-24T05:10:23", "has no time zone"),
    ("yesterday", "is not ISO 8601"),
])
def test_target_times_need_a_zone_and_iso_8601(when: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PitrRequest.parse(when, "/tmp/x", 5432)


def test_relative_paths_and_bad_ports_are_refused() -> None:
    with pytest.raises(ConfigError, match="absolute path"):
        PitrRequest.parse("latest", "data", 5432)
    with pytest.raises(ConfigError, match="out of range"):
        PitrRequest.parse("latest", "/tmp/x", 80)
