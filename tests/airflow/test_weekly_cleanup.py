"""weekly_cleanup through dag.test(): a dry run changes nothing, a real run applies retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status, utcnow
from amprenta_backup.core.storage import S3Storage
from tests.support.airflow_env import REPO
from tests.support.stored_backups import stored_backup


def _figures(dag_run: Any) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id="weekly_cleanup", run_id=dag_run.run_id,
                                                 task_id="cleanup", key="return_value").one()
        figures: dict[str, Any] = XComModel.deserialize_value(row)
    return figures


def test_schedule_and_dry_run_param(airflow_db: None) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.dags["weekly_cleanup"].timetable.expression == "0 4 * * 0"
    assert bag.dags["weekly_cleanup"].params["dry_run"] is False
    assert bag.dags["daily_health"].timetable.expression == "0 6 * * *"


def test_dry_run_then_cleanup_on_s3(run_dag: Any, s3_env: dict[str, Any],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_RETENTION_DAYS", "30")
    monkeypatch.setenv("BACKUP_KEEP_LAST", "2")
    catalog: Catalog = s3_env["catalog"]
    storage = S3Storage(s3_env["client"], s3_env["bucket"])
    now = utcnow()
    kept, expired = ([stored_backup(storage, catalog, "pg_source", now - timedelta(days=d))
                      for d in days] for days in ((1, 45), (50, 60, 400)))
    before = {o.key: o.size for o in storage.list_objects()}

    dry = run_dag("weekly_cleanup", run_conf={"dry_run": True})
    assert str(dry.state) == "success"
    assert _figures(dry)["dry_run"] is True
    assert sorted(_figures(dry)["removed"]) == sorted(r.backup_id for r in expired)
    assert {o.key for o in storage.list_objects()} == set(before)
    assert {r.status for r in catalog.find()} == {Status.COMPLETED}

    real = run_dag("weekly_cleanup")
    assert str(real.state) == "success"
    figures = _figures(real)
    assert figures["dry_run"] is False and figures["errors"] == []
    assert sorted(figures["removed"]) == sorted(r.backup_id for r in expired)
    assert figures["kept_reasons"] == {"newest completed backup": 1,
                                       "among the newest 2": 1}
    statuses = {r.backup_id: r.status for r in catalog.find()}
    assert statuses == {**{r.backup_id: Status.COMPLETED for r in kept},
                        **{r.backup_id: Status.DELETED for r in expired}}
    remaining = {o.key for o in storage.list_objects()}
    gone = set(before) - remaining
    assert {key.split("/")[-2] for key in gone} == {r.backup_id for r in expired}
    assert {key.split("/")[-2] for key in remaining} == {r.backup_id for r in kept}
    assert figures["bytes_freed"] == sum(before[key] for key in gone)
    with catalog.cursor() as cur:
        cur.execute("SELECT DISTINCT deleted_by FROM backup_records WHERE status = 'deleted'")
        assert [r["deleted_by"] for r in cur.fetchall()] == [
            f"airflow:weekly_cleanup/{real.run_id}"]
