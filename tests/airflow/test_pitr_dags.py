"""PITR DAGs through dag.test(): base backups, point-in-time restores and drills, all real."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.models import Status
from amprenta_backup.core.pitr.localserver import LocalServer, free_port, server_user
from amprenta_backup.core.storage import S3Storage
from amprenta_backup.sandbox.s3server import MotoServer
from tests.airflow.conftest import postgres_conn_json
from tests.support.airflow_env import REPO
from tests.support.wal import PREFIX, WalSetup, scratch_parent, start_archiving_cluster

TARGET = "pg_pitr.pitr"
WHEN = datetime(2026, 11, 22, 0, 30, tzinfo=UTC)


def states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.fixture(scope="module")
def wal(moto_server: MotoServer) -> Iterator[WalSetup]:
    setup = start_archiving_cluster(moto_server, moto_server.create_bucket("af-pitr"), TARGET)
    try:
        yield setup
    finally:
        setup.stop()


@pytest.fixture
def pitr_env(s3_env: dict[str, Any], wal: WalSetup,
             monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Storage in the archiving cluster's bucket and the PITR settings pointing at it."""
    monkeypatch.setenv("BACKUP_S3_BUCKET", wal.archive.storage.bucket)
    monkeypatch.setenv("BACKUP_S3_PREFIX", PREFIX)
    monkeypatch.setenv("AIRFLOW_CONN_PG_PITR", postgres_conn_json(wal.cluster, "postgres"))
    monkeypatch.setenv("BACKUP_PITR_CONN_ID", "pg_pitr")
    monkeypatch.setenv("BACKUP_WAL_TARGET", TARGET)
    monkeypatch.setenv("BACKUP_WAL_COMMAND", wal.command)  # one the postgres OS user can run
    return {**s3_env, "wal": wal}


def test_pitr_dags_parse_with_their_schedules(airflow_db: None) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    weekly = bag.dags["weekly_base_backup"]
    assert weekly.timetable.expression == "30 0 * * 0" and weekly.max_active_runs == 1
    assert weekly.get_task("complete").trigger_rule == "all_done"
    assert weekly.get_task("wait_for_wal").deferrable


def test_weekly_base_backup_completes_once_the_wal_is_archived(
        run_dag: Any, pitr_env: dict[str, Any], moto_server: MotoServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    copy_bucket = moto_server.create_bucket("af-pitr-copy")  # the second copy, same endpoint
    monkeypatch.setenv("BACKUP_COPY_STORAGE_TYPE", "s3")
    monkeypatch.setenv("BACKUP_COPY_AWS_CONN_ID", "aws_backups")
    monkeypatch.setenv("BACKUP_COPY_S3_BUCKET", copy_bucket)
    monkeypatch.setenv("BACKUP_COPY_S3_PREFIX", PREFIX)
    dag_run = run_dag("weekly_base_backup", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "success", states(dag_run)
    _copied_base_backup_and_wal(dag_run, pitr_env, S3Storage(moto_server.client(), copy_bucket))
    records = pitr_env["catalog"].find(target=TARGET)
    assert len(records) == 1 and records[0].status == Status.COMPLETED
    assert records[0].kind == "physical" and records[0].run.dag_id == "weekly_base_backup"
    storage = pitr_env["wal"].archive.storage
    folder = layout.backup_folder(PREFIX, TARGET, records[0].backup_id)
    manifest = json.loads(storage.get_bytes(layout.manifest_key(folder)))
    assert pitr_env["wal"].archive.has(manifest["wal"]["stop_segment"])
    cleanup = dag_run.get_task_instance("cleanup_wal").xcom_pull(task_ids="cleanup_wal")
    assert records[0].backup_id in cleanup["base_backups"]
    assert pitr_env["wal"].archive.has(manifest["wal"]["start_segment"])  # still needed


def _copied_base_backup_and_wal(dag_run: Any, pitr_env: dict[str, Any], copy: S3Storage
                                ) -> None:
    """The copy holds the base backup (sha256 as recorded) and every archived WAL file."""
    done = dag_run.get_task_instance("copy").xcom_pull(task_ids="copy")
    (record,) = pitr_env["catalog"].find(target=TARGET)
    assert done["base_backup"]["backup_id"] == record.backup_id
    assert done["base_backup"]["status"] == "verified" and done["wal_copied"] > 0
    assert record.manifest is not None
    stored = copy.get_bytes(record.manifest.key)
    assert hashlib.sha256(stored).hexdigest() == record.sha256
    archive = pitr_env["wal"].archive
    needed = [archive.key(record.manifest.wal[end]) for end in ("start_segment", "stop_segment")]
    copied = {o.key: o.size for o in copy.list_objects(f"{PREFIX}/{TARGET}/wal/")}
    assert all(key in copied and key + ".sha256" in copied for key in needed), needed
    for key in needed:  # the same bytes as archived, checksum sidecar included
        assert copy.get_bytes(key) == archive.storage.get_bytes(key)


def test_a_base_backup_whose_wal_never_arrives_fails_and_is_recorded(
        run_dag: Any, pitr_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The WAL target names an archive the cluster does not write to: the wait runs out."""
    monkeypatch.setenv("BACKUP_WAL_TARGET", "not.archived")
    monkeypatch.setenv("BACKUP_WAL_ARCHIVE_WAIT_SECONDS", "2")
    dag_run = run_dag("weekly_base_backup", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "failed"
    assert states(dag_run) == {"base_backup": "success", "wait_for_wal": "failed",
                               "complete": "failed", "copy": "upstream_failed",
                               "cleanup_wal": "upstream_failed"}
    [record] = pitr_env["catalog"].find(target="not.archived")
    assert record.status == Status.FAILED and "never reached the archive" in (record.error or "")


def test_pitr_restore_dag_brings_the_cluster_back_to_t(
        run_dag: Any, pitr_env: dict[str, Any], wal: WalSetup,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_WRITERS", "pg_pitr=load_marks")  # the plan names it
    backup_run = run_dag("weekly_base_backup", logical_date=WHEN, run_after=WHEN)
    assert str(backup_run.state) == "success", states(backup_run)
    wal.cluster.execute("CREATE TABLE IF NOT EXISTS dag_marks (phase text, n int)")
    wal.cluster.execute("INSERT INTO dag_marks SELECT 'before', g FROM generate_series(1, 300) g")
    time.sleep(1)
    t = wal.cluster.query("SELECT clock_timestamp()")[0][0]
    time.sleep(1)
    wal.cluster.execute("INSERT INTO dag_marks SELECT 'after', g FROM generate_series(1, 30) g")
    wal.switch_wal()
    parent = scratch_parent()
    data = parent / "restored"
    try:
        dag_run = run_dag("pitr_restore", run_conf={
            "target_time": t.isoformat(), "data_directory": str(data), "port": free_port()})
        assert str(dag_run.state) == "success", states(dag_run)
        assert states(dag_run) == {"plan": "success", "pause_writers": "skipped",
                                   "restore": "success", "resume_writers": "skipped",
                                   "replay_plan": "success"}
        plan = dag_run.get_task_instance("plan").xcom_pull(task_ids="plan")
        assert plan["pipelines"]["lines"] == [
            "1 DAG writes to database 'postgres': load_marks (BACKUP_WRITERS); pause it "
            "by hand before it writes (pause_writers is off) (Airflow's DAGs were not "
            "read: set BACKUP_AIRFLOW_API_CONN_ID; BACKUP_WRITERS only)"]
        report = dag_run.get_task_instance("restore").xcom_pull(task_ids="restore")
        assert report["recovered_to"] is not None and report["achieved_rpo_seconds"] < 2
        assert report["data_dir"] == str(data) and report["timeline"] == 2
        with psycopg.connect(host="127.0.0.1", port=report["port"], user=wal.cluster.user,
                             password=wal.cluster.password, dbname="postgres") as db:
            rows = dict(db.execute("SELECT phase, count(*) FROM dag_marks GROUP BY 1").fetchall())
        assert rows == {"before": 300}
    finally:
        LocalServer(data, server_user("postgres"), parent / "restored.pitr.log").stop()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.parametrize(("conf", "message"), [
    ({"target_time": "2026-11-24 05:10:23"}, "has no time zone"),
])
def test_pitr_restore_refuses_bad_input_before_touching_anything(
        run_dag: Any, pitr_env: dict[str, Any], conf: dict[str, Any], message: str) -> None:
    parent = scratch_parent()
    try:
        dag_run = run_dag("pitr_restore", run_conf={
            "data_directory": str(parent / "x"), "port": free_port(), **conf})
        assert str(dag_run.state) == "failed"
        assert states(dag_run) == {"plan": "failed", "pause_writers": "upstream_failed",
                                   "restore": "upstream_failed",
                                   "resume_writers": "skipped",
                                   "replay_plan": "upstream_failed"}
        assert list(parent.iterdir()) == []
        with pitr_env["catalog"].cursor() as cur:  # the failure alert names the problem
            cur.execute("SELECT message FROM admin_notifications")
            assert any(message in row["message"] for row in cur.fetchall())
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_pitr_restore_form_refuses_a_missing_data_directory(run_dag: Any, airflow_db: None
                                                            ) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="data_directory"):
        run_dag("pitr_restore", run_conf={"target_time": "latest", "data_directory": None})


def test_daily_health_reports_the_wal_archiver(run_dag: Any, pitr_env: dict[str, Any],
                                               wal: WalSetup) -> None:
    wal.switch_wal()
    run_dag("daily_health", logical_date=WHEN, run_after=WHEN)
    with pitr_env["catalog"].cursor() as cur:
        cur.execute("SELECT name, status, target FROM health_checks WHERE name LIKE 'wal%'")
        rows = {row["name"]: (row["status"], row["target"]) for row in cur.fetchall()}
    assert rows["wal_archive_failures"] == ("ok", TARGET)
    assert rows["wal_in_archive"] == ("ok", TARGET)
    assert rows["wal_rpo"][0] in ("ok", "warning")  # the sandbox runs without archive_timeout


def drill_row(pitr_env: dict[str, Any], dag_run: Any) -> dict[str, Any]:
    with pitr_env["catalog"].cursor() as cur:
        cur.execute("SELECT * FROM pitr_drills WHERE run_id = %s", (dag_run.run_id,))
        return dict(cur.fetchone())


def test_pitr_drill_restores_to_t_records_rpo_and_rto_and_removes_the_scratch(
        run_dag: Any, pitr_env: dict[str, Any]) -> None:
    backup_run = run_dag("weekly_base_backup", logical_date=WHEN, run_after=WHEN)
    assert str(backup_run.state) == "success", states(backup_run)
    dag_run = run_dag("pitr_drill", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "success", states(dag_run)
    scratch = dag_run.get_task_instance("restore_to_t").xcom_pull(task_ids="restore_to_t",
                                                                   key="scratch")
    assert not Path(scratch["folder"]).exists()
    row = drill_row(pitr_env, dag_run)
    assert row["status"] == "passed" and row["rows_checked"] == {"before": 1, "after": 0}
    assert 0 <= row["achieved_rpo_seconds"] < 1 and row["rto_seconds"] > 0
    assert row["recovered_to"] <= row["target_time"]
    # the replay report measures from T (no writer DAG here: nothing to redo), and is kept
    replay = dag_run.get_task_instance("replay_plan").xcom_pull(task_ids="replay_plan")
    assert replay["point"] == row["target_time"].isoformat()
    assert replay["headline"] == (f"0 runs to redo (0 of 0 writer DAGs) since "
                                  f"{row['target_time']:%Y-%m-%d %H:%M:%S} UTC (PITR target time)")
    with pitr_env["catalog"].cursor() as cur:
        cur.execute("SELECT kind, run_count FROM replay_plans WHERE id = %s", (replay["id"],))
        assert cur.fetchone() == {"kind": "pitr_drill", "run_count": 0}


def test_a_failed_pitr_drill_is_recorded_and_its_scratch_still_removed(
        run_dag: Any, pitr_env: dict[str, Any]) -> None:
    """No base backup in this test's fresh catalog: the restore fails, the teardown runs."""
    dag_run = run_dag("pitr_drill", logical_date=WHEN, run_after=WHEN)
    assert str(dag_run.state) == "failed"
    assert states(dag_run) == {"mark_source": "success", "restore_to_t": "failed",
                               "remove_scratch": "success", "replay_plan": "upstream_failed"}
    scratch = dag_run.get_task_instance("restore_to_t").xcom_pull(task_ids="restore_to_t",
                                                                   key="scratch")
    assert not Path(scratch["folder"]).exists()
    row = drill_row(pitr_env, dag_run)
    assert row["status"] == "failed" and "no completed base backup" in row["error"]
