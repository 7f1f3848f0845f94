"""monthly_restore_drill through dag.test(): real backups, real restores, real alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.drill import record as drill_record
from amprenta_backup.core.drill.record import DrillRecord
from amprenta_backup.core.drill.report import report_keys
from amprenta_backup.core.models import Manifest, Status
from amprenta_backup.core.notifications import list_admin_notifications
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.integration.conftest import conninfo
from tests.support.airflow_env import REPO
from tests.support.backups import flip_byte, make_backup, rewrite

NOVEMBER_FIRST = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def _states(dag_run: Any) -> dict[str, str]:
    return {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in dag_run.get_task_instances()}


def _drills(catalog: Catalog) -> dict[str, DrillRecord]:
    """The drills recorded, by target."""
    return {record.target: record for record in drill_record.history(catalog)}


def _backups(backup_env: dict[str, Any], cluster: ClusterBase,
             when: datetime | None = None) -> dict[str, Manifest]:
    """One real backup of each configured target."""
    storage, catalog = LocalStorage(backup_env["root"]), backup_env["catalog"]
    return {target: make_backup(storage, catalog, conninfo(cluster, dbname), target, when)
            for target, dbname in (("pg_source", "af_source"),
                                   ("pg_source.af_second", "af_second"))}


def _report(backup_env: dict[str, Any], manifest: Manifest, drill_id: str) -> dict[str, Any]:
    json_key, md_key = report_keys(manifest.key.rsplit("/", 1)[0], drill_id)
    storage = LocalStorage(backup_env["root"])
    report: dict[str, Any] = json.loads(storage.get_bytes(json_key))
    report["markdown"] = storage.get_bytes(md_key).decode()
    return report


def test_runs_at_three_on_the_first_with_a_drill_chain_mapped_over_the_targets(
    airflow_db: None,
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup
    from dateutil.relativedelta import relativedelta

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["monthly_restore_drill"]

    assert dag.timetable.expression == "0 3 1 * *" and str(dag.timetable.timezone) == "UTC"
    assert dag.timetable.interval == relativedelta(months=1) and dag.catchup is False
    assert isinstance(dag.task_group_dict["drill"], MappedTaskGroup)
    chain = ["drill.setup", "drill.restore", "drill.checks", "drill.teardown"]
    for before, after in zip(chain, chain[1:], strict=False):
        assert before in dag.get_task(after).upstream_task_ids
    teardown = dag.get_task("drill.teardown")
    assert teardown.trigger_rule == "all_done" and teardown.is_teardown


def test_good_backups_pass_and_leave_rows_reports_and_no_scratch_database(
    run_dag: Any, backup_env: dict[str, Any], pg_cluster: ClusterBase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKUP_DRILL_ASSERTIONS", json.dumps([
        {"name": "customers_exist", "sql": "SELECT count(*) FROM app.customers",
         "expect": "> 0"}]))
    backups = _backups(backup_env, pg_cluster)

    dag_run = run_dag("monthly_restore_drill")

    assert str(dag_run.state) == "success", _states(dag_run)
    drills = _drills(backup_env["catalog"])
    assert set(drills) == set(backups)
    for target, record in drills.items():
        assert record.passed is True and record.backup_id == backups[target].backup_id
        assert record.scratch_dropped_at is not None and record.rto_seconds
        assert record.dag_id == "monthly_restore_drill" and record.run_id == dag_run.run_id
        assert "assertion:customers_exist" in [c.name for c in record.checks]
        assert not pg_cluster.database_exists(record.scratch_database)
        report = _report(backup_env, backups[target], record.drill_id)
        assert report["passed"] is True and "PASSED" in report["markdown"].splitlines()[0]
    assert list_admin_notifications(backup_env["catalog"]) == []


def test_the_form_names_the_backup_to_drill_and_only_its_target_is_drilled(
    run_dag: Any, backup_env: dict[str, Any], pg_cluster: ClusterBase,
) -> None:
    older = _backups(backup_env, pg_cluster, datetime(2026, 11, 20, 1, 0, tzinfo=UTC))
    _backups(backup_env, pg_cluster)  # newer ones, which the drill would pick by itself
    chosen = older["pg_source.af_second"]

    dag_run = run_dag("monthly_restore_drill", run_conf={"backup_id": chosen.backup_id})

    assert str(dag_run.state) == "success", _states(dag_run)
    setups = {ti.rendered_map_index: str(ti.state) for ti in dag_run.get_task_instances()
              if ti.task_id == "drill.setup"}
    assert setups == {"pg_source": "skipped", "pg_source.af_second": "success"}  # as filed
    (record,) = _drills(backup_env["catalog"]).values()
    assert (record.target, record.backup_id, record.strategy, record.passed) == (
        "pg_source.af_second", chosen.backup_id, "given", True)
    assert backup_env["catalog"].get(chosen.backup_id).status == Status.VERIFIED
    assert backup_env["catalog"].get(older["pg_source"].backup_id).status == Status.COMPLETED


def test_a_failed_assertion_and_a_corrupt_backup_fail_alert_and_still_tear_down(
    run_dag: Any, backup_env: dict[str, Any], pg_cluster: ClusterBase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKUP_ALERT_CHANNELS", "table")
    monkeypatch.setenv("BACKUP_TASK_RETRIES", "2")  # a failed drill must fail at once anyway
    monkeypatch.setenv("BACKUP_DRILL_ASSERTIONS", json.dumps([
        {"name": "five_customers", "sql": "SELECT count(*) FROM app.customers",
         "expect": "== 5", "targets": ["pg_source"]}]))
    backups = _backups(backup_env, pg_cluster)
    corrupt = backups["pg_source.af_second"]
    rewrite(LocalStorage(backup_env["root"]), corrupt.key, flip_byte)

    dag_run = run_dag("monthly_restore_drill")

    assert str(dag_run.state) == "failed"
    assert _states(dag_run) == {
        "list_targets[-1]": "success", "drill.setup[0]": "success",
        "drill.setup[1]": "success", "drill.restore[0]": "success",
        "drill.restore[1]": "failed", "drill.checks[0]": "failed",
        "drill.checks[1]": "upstream_failed", "drill.teardown[0]": "success",
        "drill.teardown[1]": "success"}
    assert all(ti.try_number == 1 for ti in dag_run.get_task_instances()
               if str(ti.state) == "failed")
    drills = _drills(backup_env["catalog"])
    bad_assertion, bad_bytes = drills["pg_source"], drills["pg_source.af_second"]
    assert [c.name for c in bad_assertion.failures] == ["assertion:five_customers"]
    assert [c.name for c in bad_bytes.failures] == ["checksum"]
    for record in drills.values():
        assert record.passed is False and record.finished_at is not None
        assert not pg_cluster.database_exists(record.scratch_database)
    assert backup_env["catalog"].get(corrupt.backup_id).status == Status.CORRUPT
    report = _report(backup_env, backups["pg_source"], bad_assertion.drill_id)
    assert "| FAIL | assertion:five_customers |" in report["markdown"]

    alerts = [row["message"] for row in list_admin_notifications(backup_env["catalog"])]
    assert any("Target: pg_source\n" in text and f"Backup id: {backups['pg_source'].backup_id}"
               in text and "assertion:five_customers: SELECT count(*) FROM app.customers: got "
               "200, expected == 5" in text for text in alerts), alerts
    assert any("Target: pg_source.af_second" in text and f"Backup id: {corrupt.backup_id}"
               in text and "sha256 of the stored bytes is" in text for text in alerts), alerts


def test_a_backfilled_run_drills_the_latest_backup_of_its_own_month(
    run_dag: Any, backup_env: dict[str, Any], pg_cluster: ClusterBase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKUP_TARGETS", "pg_source")
    storage, catalog = LocalStorage(backup_env["root"]), backup_env["catalog"]
    source = conninfo(pg_cluster, "af_source")
    made = {}
    for label, when in (("september", datetime(2026, 9, 20, 1, tzinfo=UTC)),
                        ("early_october", datetime(2026, 10, 2, 1, tzinfo=UTC)),
                        ("late_october", datetime(2026, 10, 30, 1, tzinfo=UTC)),
                        ("latest", None)):
        manifest = make_backup(storage, catalog, source, when=when)
        if when is not None:
            record = catalog.get(manifest.backup_id)
            record.started_at = when
            catalog.save(record)
        made[label] = manifest

    dag_run = run_dag("monthly_restore_drill", logical_date=NOVEMBER_FIRST,
                      run_after=NOVEMBER_FIRST)

    assert str(dag_run.state) == "success", _states(dag_run)
    record = _drills(catalog)["pg_source"]
    assert record.backup_id == made["late_october"].backup_id
    assert (record.window_start, record.window_end) == (datetime(2026, 10, 1, 3, tzinfo=UTC),
                                                        NOVEMBER_FIRST)
    assert _report(backup_env, made["late_october"], record.drill_id)["passed"] is True
