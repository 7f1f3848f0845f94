"""weekly_verify through dag.test(): real backups, real storage, real catalog."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from amprenta_backup.core.models import Status
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.core.verify import history
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.integration.conftest import conninfo
from tests.support.airflow_env import REPO
from tests.support.backups import flip_byte, make_backup, rewrite

SUNDAY = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)


def _states(dag_run: Any) -> dict[str, str]:
    return {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in dag_run.get_task_instances()}


def test_runs_sundays_at_five_with_a_week_long_interval(airflow_db: None) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["weekly_verify"]
    assert dag.timetable.expression == "0 5 * * 0" and dag.timetable.interval == timedelta(weeks=1)
    assert str(dag.timetable.timezone) == "UTC" and dag.catchup is False
    assert dag.get_task("verify").upstream_task_ids == {"list_unverified"}


def test_marks_intact_backups_verified_and_fails_on_a_corrupt_one_without_retry(
    run_dag: Any, backup_env: dict[str, Any], pg_cluster: ClusterBase,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    storage, catalog = LocalStorage(backup_env["root"]), backup_env["catalog"]
    source = conninfo(pg_cluster, "af_source")
    good = make_backup(storage, catalog, source)
    bad = make_backup(storage, catalog, source, target="pg_source.af_second")
    rewrite(storage, bad.key, flip_byte)
    monkeypatch.setenv("BACKUP_TASK_RETRIES", "2")  # a corrupt backup must fail anyway

    dag_run = run_dag("weekly_verify", logical_date=SUNDAY, run_after=SUNDAY)

    assert str(dag_run.state) == "failed"
    states = {ti.map_index: ti for ti in dag_run.get_task_instances() if ti.task_id == "verify"}
    assert sorted(str(ti.state) for ti in states.values()) == ["failed", "success"]
    assert all(ti.try_number == 1 for ti in states.values())
    assert catalog.get(good.backup_id).status == Status.VERIFIED
    corrupt = catalog.get(bad.backup_id)
    assert corrupt.status == Status.CORRUPT and "sha256" in (corrupt.error or "")
    out, err = capfd.readouterr()
    logs = "".join(p.read_text(errors="replace")
                   for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log"))
    assert (f"backup {bad.backup_id} of target pg_source.af_second is CORRUPT: sha256 of the "
            "stored bytes is") in out + err + logs

    again = run_dag("weekly_verify", logical_date=SUNDAY + timedelta(weeks=1))
    assert str(again.state) == "success", _states(again)
    assert _states(again) == {"list_unverified[-1]": "success", "verify[-1]": "skipped"}
    assert len(history(catalog, good.backup_id)) == 1


def test_a_backfilled_run_lists_only_the_backups_of_its_own_week(
    backup_env: dict[str, Any], pg_cluster: ClusterBase,
) -> None:
    """dag.test() can only create manual runs, so the listing task runs on its own here with
    a stand-in run object that carries the backfill run type and the week's interval."""
    from airflow.utils.types import DagRunType

    from amprenta_backup.operators.verify import ListUnverifiedBackupsOperator

    storage, catalog = LocalStorage(backup_env["root"]), backup_env["catalog"]
    source = conninfo(pg_cluster, "af_source")
    made = {}
    for label, when in (("before", SUNDAY - timedelta(days=8)),
                        ("inside", SUNDAY - timedelta(days=2)), ("after", SUNDAY)):
        manifest = make_backup(storage, catalog, source, when=when)
        record = catalog.get(manifest.backup_id)
        record.started_at = when
        catalog.save(record)
        made[label] = manifest.backup_id
    operator = ListUnverifiedBackupsOperator(task_id="list_unverified")
    week = {"data_interval_start": SUNDAY - timedelta(weeks=1), "data_interval_end": SUNDAY}

    backfill = operator.execute({"dag_run": SimpleNamespace(run_type=DagRunType.BACKFILL_JOB),
                                 **week})
    scheduled = operator.execute({"dag_run": SimpleNamespace(run_type=DagRunType.SCHEDULED),
                                  **week})

    assert backfill == [made["inside"]]
    assert scheduled == [made["after"], made["inside"], made["before"]]
