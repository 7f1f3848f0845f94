"""Health checks against real conditions: old backups, failures, storage gone, corruption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from amprenta_backup.core import layout, pgtools
from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import StepError
from amprenta_backup.core.health import (
    CheckResult,
    HealthChecker,
    Level,
    health_alerts,
    save_results,
)
from amprenta_backup.core.models import BackupRecord, RunContext, Status, human_bytes, utcnow
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pipeline import Compression
from amprenta_backup.core.settings import BackupTarget
from amprenta_backup.core.storage import LocalStorage, S3Storage, Storage
from amprenta_backup.sandbox.s3server import MotoServer

TARGET = BackupTarget("pg_source")
SETTINGS = BackupSettings(prefix="database", compression=Compression(level=1))


def checker(storage: Storage, catalog: Catalog, conn: PgConnInfo, **kw: int | str
            ) -> HealthChecker:
    return HealthChecker(storage, catalog, [TARGET], lambda _t: conn, **kw)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def old_record(catalog: Catalog, status: Status, hours_ago: float) -> BackupRecord:
    """A catalog record of a backup that ran ``hours_ago`` hours ago."""
    started = utcnow() - timedelta(hours=hours_ago)
    record = BackupRecord(backup_id=layout.make_backup_id(started), target=TARGET.name,
                          status=status, location="file:///nowhere", started_at=started,
                          completed_at=started + timedelta(minutes=3), stored_bytes=1234)
    catalog.save(record)
    return record


def test_a_healthy_target_is_all_ok_and_gives_no_alert(
    local_storage: LocalStorage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    manifest = BackupRunner(local_storage, catalog, SETTINGS).run(
        TARGET.name, source_conn, RunContext(), layout.make_backup_id(utcnow()))
    results = checker(local_storage, catalog, source_conn).run(utcnow())
    assert [(r.name, r.status) for r in results] == [
        ("catalog_reachable", Level.OK), ("storage_writable", Level.OK),
        ("worker_clock", Level.OK), ("latest_backup_age", Level.OK), ("recent_failures", Level.OK),
        ("backups_stored", Level.OK), ("corrupt_backups", Level.OK),
        ("target_reachable", Level.OK), ("pg_dump_version", Level.OK)]
    assert by_name(results)["backups_stored"].detail == \
        f"1 backups, {human_bytes(manifest.stored_bytes)}"
    with psycopg.connect(**source_conn.connect_kwargs()) as db:
        version = db.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    assert by_name(results)["target_reachable"].detail == \
        f"{source_conn.describe()} answers (PostgreSQL {version})"
    assert health_alerts(results) == []
    assert [o.key for o in local_storage.list_objects() if "probe" in o.key] == []


def test_the_storage_probe_is_written_under_the_prefix(
    local_storage: LocalStorage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    """A bucket policy may allow writes under the prefix only: the probe goes there."""
    local_storage.root.mkdir(parents=True, exist_ok=True)
    (local_storage.root / ".amprenta-probe").mkdir()  # the root is not writable for a probe
    results = checker(local_storage, catalog, source_conn, prefix="database").run(utcnow())
    assert by_name(results)["storage_writable"].status == Level.OK
    assert not local_storage.exists("database/.amprenta-probe")


def test_an_old_backup_and_recent_failures_are_warnings(
    local_storage: LocalStorage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    old_record(catalog, Status.COMPLETED, hours_ago=50)
    secret = "Wr0ng-health-Pa55"
    wrong = PgConnInfo(source_conn.host, source_conn.port, source_conn.user, source_conn.dbname,
                       password=secret)
    with pytest.raises(StepError):
        BackupRunner(local_storage, catalog, SETTINGS).run(
            TARGET.name, wrong, RunContext(), layout.make_backup_id(utcnow()))
    results = by_name(checker(local_storage, catalog, source_conn).run(utcnow()))
    age, failures = results["latest_backup_age"], results["recent_failures"]
    assert age.status == Level.WARNING and "50.0 hours old (limit 48 h)" in age.detail
    assert failures.status == Level.WARNING
    assert "1 failed backups in the last 7 days" in failures.detail
    assert "password authentication failed" in failures.detail and secret not in failures.detail
    relaxed = checker(local_storage, catalog, source_conn, max_age_hours=72).run(utcnow())
    assert by_name(relaxed)["latest_backup_age"].status == Level.OK
    (alert,) = health_alerts(list(results.values()), dag_id="daily_health")
    assert alert.notification_type == "warning" and alert.target == TARGET.name
    assert "latest_backup_age warning" in alert.error and "recent_failures warning" in alert.error


def test_no_backup_at_all_is_a_warning(local_storage: LocalStorage, catalog: Catalog,
                                       source_conn: PgConnInfo) -> None:
    age = by_name(checker(local_storage, catalog, source_conn).run(utcnow()))["latest_backup_age"]
    assert age.status == Level.WARNING and age.detail == "no completed backup of pg_source yet"


def test_health_is_judged_as_of_the_given_time(
    local_storage: LocalStorage, catalog: Catalog, source_conn: PgConnInfo,
) -> None:
    record = old_record(catalog, Status.COMPLETED, hours_ago=24 * 30)
    assert record.completed_at is not None
    then = by_name(checker(local_storage, catalog, source_conn).run(
        record.completed_at + timedelta(hours=5)))
    assert then["latest_backup_age"].status == Level.OK
    assert then["latest_backup_age"].detail == "newest completed backup is 5.0 hours old"
    before = by_name(checker(local_storage, catalog, source_conn).run(
        record.started_at - timedelta(hours=1)))
    assert before["backups_stored"].detail == "0 backups, 0 B"


def test_a_corrupt_backup_is_critical(local_storage: LocalStorage, catalog: Catalog,
                                      source_conn: PgConnInfo) -> None:
    good = old_record(catalog, Status.VERIFIED, hours_ago=30)
    bad = old_record(catalog, Status.CORRUPT, hours_ago=5)
    corrupt = by_name(checker(local_storage, catalog, source_conn).run(utcnow()))[
        "corrupt_backups"]
    assert corrupt.status == Level.CRITICAL and bad.backup_id in corrupt.detail
    assert good.backup_id not in corrupt.detail and "take a new backup" in corrupt.hint


def test_a_deleted_bucket_is_critical(s3_storage: S3Storage, catalog: Catalog,
                                      source_conn: PgConnInfo) -> None:
    s3_storage.client.delete_bucket(Bucket=s3_storage.bucket)
    storage = by_name(checker(s3_storage, catalog, source_conn).run(utcnow()))["storage_writable"]
    assert storage.status == Level.CRITICAL
    assert f"bucket {s3_storage.bucket!r} does not exist" in storage.detail


def test_a_stopped_s3_endpoint_is_critical(catalog: Catalog, source_conn: PgConnInfo) -> None:
    server = MotoServer().start()
    try:
        client = server.client(retries={"max_attempts": 1, "mode": "standard"})
        storage = S3Storage(client, server.create_bucket("health-stop"))
        assert by_name(checker(storage, catalog, source_conn).run(utcnow()))[
            "storage_writable"].status == Level.OK
        server.kill()
        result = by_name(checker(storage, catalog, source_conn).run(utcnow()))[
            "storage_writable"]
    finally:
        server.stop()
    assert result.status == Level.CRITICAL and server.endpoint_url in result.detail


def test_an_unwritable_local_folder_is_critical(tmp_path: Path, catalog: Catalog,
                                                source_conn: PgConnInfo) -> None:
    (tmp_path / "file").write_text("not a folder")
    storage = LocalStorage(tmp_path / "file" / "backups")
    result = by_name(checker(storage, catalog, source_conn).run(utcnow()))["storage_writable"]
    assert result.status == Level.CRITICAL and "BACKUP_LOCAL_PATH" in result.detail


def test_an_unreachable_catalog_is_critical_and_skips_record_checks(
    local_storage: LocalStorage, source_conn: PgConnInfo,
) -> None:
    gone = Catalog(source_conn.with_database("no_such_catalog"))
    results = checker(local_storage, gone, source_conn).run(utcnow())
    assert [r.name for r in results] == ["catalog_reachable", "storage_writable",
                                         "target_reachable", "pg_dump_version"]
    assert results[0].status == Level.CRITICAL and "no_such_catalog" in results[0].detail


def test_an_unreachable_target_is_critical(local_storage: LocalStorage, catalog: Catalog,
                                           source_conn: PgConnInfo) -> None:
    down = PgConnInfo(source_conn.host, 1, source_conn.user, source_conn.dbname,
                      password=source_conn.password)
    result = checker(local_storage, catalog, down).run(utcnow())[-1]  # no pg_dump check then
    assert result.name == "target_reachable" and result.status == Level.CRITICAL
    assert f"cannot connect to {down.describe()}" in result.detail


def test_a_pg_dump_older_than_the_server_is_critical(
    local_storage: LocalStorage, catalog: Catalog, source_conn: PgConnInfo, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every major up to 18 is installed here, so a client older than the server cannot be had
    for real: AMPRENTA_PG_BINDIR pins one folder whose stub ``pg_dump`` reports version 13,
    standing in for an outdated client package."""
    stub = tmp_path / "bin" / "pg_dump"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 13.16'\n")
    stub.chmod(0o755)
    monkeypatch.setenv("AMPRENTA_PG_BINDIR", str(stub.parent))
    try:
        result = checker(local_storage, catalog, source_conn).run(utcnow())[-1]
    finally:
        monkeypatch.delenv("AMPRENTA_PG_BINDIR")
    assert result.name == "pg_dump_version" and result.status == Level.CRITICAL
    with psycopg.connect(**source_conn.connect_kwargs()) as db:
        major = pgtools.server_major(db)
    assert result.detail.startswith(f"the PostgreSQL {major} server needs pg_dump {major} or "
                                    "newer (installed: pg_dump 13.16)")
    assert f"postgresql-client-{major}" in result.hint


def test_results_are_stored_for_the_dashboard(local_storage: LocalStorage, catalog: Catalog,
                                              source_conn: PgConnInfo) -> None:
    as_of = utcnow()
    results = checker(local_storage, catalog, source_conn).run(as_of)
    save_results(catalog, results, as_of, run_id="manual__x")
    with catalog.cursor() as cur:
        cur.execute("SELECT target, name, status, as_of, run_id FROM health_checks ORDER BY id")
        rows = cur.fetchall()
    assert [(r["target"], r["name"], r["status"]) for r in rows] == [
        (r.target, r.name, str(r.status)) for r in results]
    assert {(r["as_of"], r["run_id"]) for r in rows} == {(as_of, "manual__x")}


def test_cli_health_exits_1_on_critical_and_prints_json(
    catalog: Catalog, source_conn: PgConnInfo, tmp_path: Path,
) -> None:
    def uri(dbname: str) -> str:
        return (f"postgresql://{source_conn.user}:{quote(source_conn.password or '', safe='')}"
                f"@{source_conn.host}:{source_conn.port}/{dbname}")

    env = {"PATH": os.environ["PATH"], "AIRFLOW_CONN_PG_SOURCE": uri(source_conn.dbname),
           "AIRFLOW_CONN_BACKUP_CATALOG": uri(catalog.conn.dbname), "BACKUP_TARGETS": "pg_source",
           "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path / "b")}
    old_record(catalog, Status.CORRUPT, hours_ago=2)
    done = subprocess.run([sys.executable, "-m", "amprenta_backup.cli", "health", "--json"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    statuses = {r["name"]: r["status"] for r in json.loads(done.stdout)}
    assert statuses["corrupt_backups"] == "critical" and statuses["storage_writable"] == "ok"
    assert (source_conn.password or "\0") not in done.stdout + done.stderr
