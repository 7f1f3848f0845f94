"""daily_backup through Airflow's dag.test(): real cluster, real storage, real catalog."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core.models import Manifest, Status, human_bytes
from amprenta_backup.core.storage import LocalStorage, S3Storage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from amprenta_backup.sandbox.s3server import MotoServer
from tests.integration.conftest import conninfo
from tests.support.airflow_env import REPO
from tests.support.factories import restore_stored_dump

WHEN = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def _states(dag_run: Any) -> dict[str, str]:
    return {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in dag_run.get_task_instances()}


def test_dag_files_parse_with_the_documented_schedule(airflow_db: None) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["daily_backup"]
    assert dag.timetable.expression == "0 1 * * *"
    assert dag.max_active_runs == 1 and dag.catchup is False
    backup = dag.get_task("backup")
    assert backup.partial_kwargs["retries"] == 3
    assert backup.partial_kwargs["retry_exponential_backoff"]


def test_backs_up_every_target_to_local_storage_and_restores(
    run_dag: Any, backup_env: dict[str, Any], pg_cluster: ClusterBase,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dag_run = run_dag("daily_backup", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "success", _states(dag_run)
    assert _states(dag_run) == {"list_targets[-1]": "success", "backup[0]": "success",
                                "backup[1]": "success", "copy[0]": "skipped",
                                "copy[1]": "skipped"}  # no BACKUP_COPY_STORAGE_TYPE
    assert sorted(ti.rendered_map_index for ti in dag_run.get_task_instances()
                  if ti.task_id == "backup") == ["pg_source", "pg_source.af_second"]  # as filed
    records = backup_env["catalog"].find()
    assert sorted(r.target for r in records) == ["pg_source", "pg_source.af_second"]
    assert all(r.status == Status.COMPLETED for r in records)
    assert all(r.run.dag_id == "daily_backup" and r.run.run_id == dag_run.run_id for r in records)
    storage = LocalStorage(backup_env["root"])
    manifests = sorted(o.key for o in storage.list_objects() if o.key.endswith("manifest.json"))
    assert len(manifests) == 2 and all(k.startswith("database/pg_source") for k in manifests)
    assert all("/2026/11/24/" in key for key in manifests)

    source = next(r for r in records if r.target == "pg_source")
    assert source.manifest is not None
    stored = source.manifest.stored_bytes  # the task log says sizes as the CLI does
    logged = "".join(capfd.readouterr()) + "".join(
        p.read_text(errors="replace") for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log"))
    assert f"backup {source.backup_id} complete: {human_bytes(stored)} stored ({stored:,} " \
           f"bytes, {source.manifest.ratio:.1f}x), sha256 {source.manifest.sha256}" in logged
    pg_cluster.create_database("af_restored")
    try:
        restore_stored_dump(storage, source.manifest, conninfo(pg_cluster, "af_restored"))
        assert_databases_equal(pg_cluster, "af_source", pg_cluster, "af_restored")
    finally:
        pg_cluster.drop_database("af_restored")

    # A cleared re-run of the same run reuses the backup ids: still two completed backups.
    again = run_dag("daily_backup", logical_date=WHEN, run_after=WHEN)
    assert str(again.state) == "success"
    assert sorted(r.backup_id for r in backup_env["catalog"].find()) == sorted(
        r.backup_id for r in records)
    keys = [o.key for o in storage.list_objects()]
    assert len(keys) == 6  # 2 x (dump + manifest) + one globals object and its info
    globals_keys = {r.manifest.globals["key"] for r in backup_env["catalog"].find()
                    if r.manifest and r.manifest.globals}
    assert len(globals_keys) == 1 and globals_keys <= set(keys)  # one per server per run


def test_records_an_asset_event_per_target(run_dag: Any, backup_env: dict[str, Any]) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    dag_run = run_dag("daily_backup", logical_date=datetime(2026, 11, 20, 1, tzinfo=UTC))
    assert str(dag_run.state) == "success"
    with create_session() as session:
        events = session.query(AssetEvent).filter(
            AssetEvent.source_run_id == dag_run.run_id).all()
        names = sorted(e.asset.name for e in events)
        extras = [e.extra for e in events]
    assert names == ["amprenta_backup.pg_source", "amprenta_backup.pg_source.af_second"]
    assert all(Path(x["location"][len("file://"):]).is_dir() for x in extras)


def test_backs_up_to_an_s3_endpoint_through_an_aws_connection_with_object_lock(
    run_dag: Any, s3_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3_env["bucket"] = f"{s3_env['bucket']}-worm"  # every object locked for a day
    s3_env["client"].create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    monkeypatch.setenv("BACKUP_S3_BUCKET", bucket)
    monkeypatch.setenv("BACKUP_OBJECT_LOCK_MODE", "governance")
    monkeypatch.setenv("BACKUP_OBJECT_LOCK_DAYS", "1")
    dag_run = run_dag("daily_backup", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "success", _states(dag_run)
    storage = S3Storage(s3_env["client"], s3_env["bucket"])
    keys = sorted(o.key for o in storage.list_objects("database/"))
    assert len(keys) == 6  # 2 backups + the server's globals (sql + info), taken once
    for key in keys:  # written through the Airflow aws connection's client (S3Hook)
        head = s3_env["client"].head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(hours=23)
    for record in s3_env["catalog"].find():
        assert record.status == Status.COMPLETED
        bucket_uri = f"s3://{s3_env['bucket']}/"
        assert record.location.startswith(f"{bucket_uri}database/")
        folder = record.location[len(bucket_uri):]
        manifest = Manifest.from_json(storage.get_bytes(f"{folder}/manifest.json"))
        assert manifest.sha256 == record.sha256


def test_copies_each_backup_to_a_second_storage_through_its_own_aws_connection(
    run_dag: Any, backup_env: dict[str, Any], moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = moto_server.create_bucket(f"copy-{backup_env['catalog_db'][-8:]}".replace("_", "-"))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_COPY", json.dumps({
        "conn_type": "aws", "login": moto_server.access_key, "password": moto_server.secret_key,
        "extra": {"endpoint_url": moto_server.endpoint_url, "region_name": moto_server.region}}))
    monkeypatch.setenv("BACKUP_COPY_STORAGE_TYPE", "s3")
    monkeypatch.setenv("BACKUP_COPY_AWS_CONN_ID", "aws_copy")
    monkeypatch.setenv("BACKUP_COPY_S3_BUCKET", bucket)
    dag_run = run_dag("daily_backup", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "success", _states(dag_run)
    assert {k: v for k, v in _states(dag_run).items() if k.startswith("copy")} == {
        "copy[0]": "success", "copy[1]": "success"}
    copy = S3Storage(moto_server.client(), bucket)
    records = backup_env["catalog"].find()
    with backup_env["catalog"].cursor() as cur:
        cur.execute("SELECT * FROM backup_copies ORDER BY backup_id")
        rows = {r["backup_id"]: r for r in cur.fetchall()}
    assert sorted(rows) == sorted(r.backup_id for r in records)
    for record in records:
        row = rows[record.backup_id]
        assert row["status"] == "verified" and row["sha256"] == record.sha256
        assert row["run_id"] == dag_run.run_id and row["verified_at"] is not None
        assert record.manifest is not None
        assert hashlib.sha256(copy.get_bytes(record.manifest.key)).hexdigest() == record.sha256
    assert len(list(copy.list_objects())) == 6  # as on the primary: 2 backups + globals


def test_wrong_password_fails_the_task_and_never_logs_it(
    run_with_wrong_password: Any, backup_env: dict[str, Any],
    capfd: pytest.CaptureFixture[str],
) -> None:
    from tests.airflow.conftest import WRONG_PASSWORD

    secret = WRONG_PASSWORD
    dag_run = run_with_wrong_password(WHEN)
    assert str(dag_run.state) == "failed"
    assert _states(dag_run)["backup[0]"] == "failed"
    (record,) = backup_env["catalog"].find()
    assert record.status == Status.FAILED and "step 'connect'" in (record.error or "")
    assert "password authentication failed" in (record.error or "")
    assert not backup_env["root"].exists() or not any(backup_env["root"].rglob("*.json"))
    out, err = capfd.readouterr()
    log_text = "".join(p.read_text(errors="replace")
                       for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log"))
    assert "password authentication failed" in out + err + log_text
    assert secret not in out + err + log_text


def test_unknown_connection_id_fails_naming_it(
    run_dag: Any, backup_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BACKUP_TARGETS", "pg_nowhere")
    dag_run = run_dag("daily_backup", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "failed"
    out, err = capfd.readouterr()
    assert "Airflow connection 'pg_nowhere' (from BACKUP_TARGETS) is not defined" in out + err
    assert backup_env["catalog"].find() == []


def test_backup_s3_endpoint_url_overrides_the_connection(
    run_dag: Any, s3_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    moto_server: Any,
) -> None:
    """The aws connection has credentials only; the endpoint comes from the environment."""
    import json

    monkeypatch.setenv("AIRFLOW_CONN_AWS_BACKUPS", json.dumps({
        "conn_type": "aws", "login": moto_server.access_key,
        "password": moto_server.secret_key, "extra": {"region_name": moto_server.region}}))
    monkeypatch.setenv("BACKUP_S3_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv("BACKUP_TARGETS", "pg_source")
    dag_run = run_dag("daily_backup", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "success", _states(dag_run)
    storage = S3Storage(s3_env["client"], s3_env["bucket"])
    assert len([o for o in storage.list_objects("database/pg_source/")]) == 2
