"""daily_health through dag.test(): results stored, alerts only for warnings and criticals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import StepError
from amprenta_backup.core.models import BackupRecord, RunContext, Status, utcnow
from amprenta_backup.core.notifications import list_admin_notifications
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.integration.conftest import conninfo
from tests.support.backups import SETTINGS, make_backup
from tests.support.receivers import SlackReceiver, SmtpReceiver, alert_receivers
from tests.support.stored_backups import stored_backup


@dataclass
class Health:
    """What a daily_health test works with: the receivers, the catalog, local storage."""

    slack: SlackReceiver
    smtp: SmtpReceiver
    catalog: Catalog
    storage: LocalStorage
    run_dag: Any

    def run(self, when: datetime) -> Any:
        return self.run_dag("daily_health", logical_date=when, run_after=when)

    def rows(self) -> list[dict[str, Any]]:
        """What the runs stored in ``health_checks``."""
        with self.catalog.cursor() as cur:
            cur.execute("SELECT as_of, target, name, status, detail FROM health_checks "
                        "ORDER BY id")
            return list(cur.fetchall())


@pytest.fixture
def health(monkeypatch: pytest.MonkeyPatch, backup_env: dict[str, Any], run_dag: Any
           ) -> Iterator[Health]:
    """One target (pg_source, local storage) with every alert channel wired to a receiver."""
    monkeypatch.setenv("BACKUP_TARGETS", "pg_source")
    with alert_receivers(monkeypatch) as (slack, smtp):
        yield Health(slack, smtp, backup_env["catalog"], LocalStorage(backup_env["root"]),
                     run_dag)


def test_a_healthy_target_passes_stores_results_and_alerts_nobody(
    health: Health, pg_cluster: ClusterBase,
) -> None:
    make_backup(health.storage, health.catalog, conninfo(pg_cluster, "af_source"))
    assert str(health.run(utcnow()).state) == "success"
    rows = health.rows()
    assert sorted(r["name"] for r in rows) == [
        "backups_stored", "catalog_reachable", "corrupt_backups", "latest_backup_age",
        "pg_dump_version", "recent_failures", "storage_writable", "target_reachable",
        "worker_clock"]
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["target"] for r in rows} == {None, "pg_source"}
    assert health.slack.posts == [] and health.smtp.messages == []
    assert list_admin_notifications(health.catalog) == []


def test_an_old_backup_and_a_failure_warn_on_every_channel_but_pass(
    health: Health, pg_cluster: ClusterBase,
) -> None:
    stored_backup(health.storage, health.catalog, "pg_source", utcnow() - timedelta(hours=60))
    good = conninfo(pg_cluster, "af_source")
    wrong = PgConnInfo(good.host, good.port, good.user, good.dbname, password="Not-it-42")
    with pytest.raises(StepError):
        BackupRunner(health.storage, health.catalog, SETTINGS).run(
            "pg_source", wrong, RunContext(), "20261120T010000Z-0badbad0")
    assert str(health.run(utcnow()).state) == "success"
    statuses = {r["name"]: r["status"] for r in health.rows()}
    assert statuses["latest_backup_age"] == statuses["recent_failures"] == "warning"
    (text,) = health.slack.texts
    for line in ("[WARNING] backup health warning for pg_source", "DAG: daily_health",
                 "Task: health_check", "Target: pg_source", "latest_backup_age warning",
                 "recent_failures warning", "password authentication failed",
                 "/dags/daily_health/runs/", "Fix (recent_failures):"):
        assert line in text, text
    assert "Not-it-42" not in text
    (message,) = health.smtp.wait_for(1)
    assert str(message["Subject"]) == \
        "[amprenta-backup warning] backup health warning for pg_source"
    assert "latest_backup_age warning" in health.smtp.body(message)
    (row,) = list_admin_notifications(health.catalog)
    assert row["notification_type"] == "warning" and row["message"] == text


def test_storage_gone_and_a_corrupt_backup_are_critical_and_fail_the_task(
    health: Health, s3_env: dict[str, Any],
) -> None:
    catalog, slack = health.catalog, health.slack
    found = utcnow() - timedelta(hours=20)
    catalog.save(BackupRecord(backup_id=layout.make_backup_id(found), target="pg_source",
                              status=Status.CORRUPT, location="s3://gone/x", started_at=found,
                              completed_at=found, error="sha256 mismatch"))
    s3_env["client"].delete_bucket(Bucket=s3_env["bucket"])
    assert str(health.run(utcnow()).state) == "failed"
    statuses = {(r["target"], r["name"]): r["status"] for r in health.rows()}
    assert statuses[(None, "storage_writable")] == "critical"
    assert statuses[("pg_source", "corrupt_backups")] == "critical"
    titles = [t.splitlines()[0] for t in slack.texts]
    assert "[CRITICAL] backup health critical for the backup system" in titles
    assert "[CRITICAL] backup health critical for pg_source" in titles
    # the failed task adds no alert of its own: the check alerts were this failure's alerts
    assert sorted(titles) == ["[CRITICAL] backup health critical for pg_source",
                              "[CRITICAL] backup health critical for the backup system"]
    system = next(t for t in slack.texts if "for the backup system" in t.splitlines()[0])
    assert f"bucket {s3_env['bucket']!r} does not exist" in system
    types = [r["notification_type"] for r in list_admin_notifications(catalog)]
    assert types.count("critical") == len(types) == len(slack.texts)


def test_a_backfilled_run_judges_health_as_of_its_logical_date(health: Health) -> None:
    taken = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    stored_backup(health.storage, health.catalog, "pg_source", taken)
    day_after, days_later = datetime(2026, 11, 20, 6, tzinfo=UTC), datetime(2026, 11, 23, 6,
                                                                            tzinfo=UTC)
    assert str(health.run(day_after).state) == "success"
    assert str(health.run(days_later).state) == "success"
    ages = [(r["as_of"], r["status"], r["detail"]) for r in health.rows()
            if r["name"] == "latest_backup_age"]
    assert ages == [(day_after, "ok", "newest completed backup is 5.0 hours old"),
                    (days_later, "warning",
                     "newest completed backup is 77.0 hours old (limit 48 h)")]


def test_health_checks_can_be_turned_off(health: Health,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_HEALTH_CHECK_ENABLED", "false")
    dag_run = health.run(utcnow())
    assert [str(ti.state) for ti in dag_run.get_task_instances()] == ["skipped"]
    assert health.rows() == [] and health.slack.posts == []


def answers(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(target, check, status, detail), sorted; the worker clock's measured skew differs
    between two processes by the time a query takes, so its figure is left out."""
    return sorted((r["target"] or "", r["name"], r["status"],
                   r["detail"].split(" (")[0] if r["name"] == "worker_clock" else r["detail"])
                  for r in rows)


def test_the_cli_and_daily_health_give_the_same_answers(
    health: Health, pg_cluster: ClusterBase, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One setup (a backup, PITR pointed at a server that does not archive), two ways in:
    ``amprenta-backup health`` in a subprocess and the daily_health DAG, both as of T."""
    make_backup(health.storage, health.catalog, conninfo(pg_cluster, "af_source"))
    monkeypatch.setenv("BACKUP_PITR_CONN_ID", "pg_source")
    as_of = utcnow()
    assert str(health.run(as_of).state) == "failed"  # archive_mode off is critical
    dag = answers(health.rows())
    done = subprocess.run([sys.executable, "-m", "amprenta_backup.cli", "health", "--json",
                           "--as-of", as_of.isoformat()], env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    cli = answers(json.loads(done.stdout))
    assert cli == dag
    assert ("pg_source.pitr", "wal_archive_mode", "critical") in {row[:3] for row in cli}
    assert ("pg_source", "latest_backup_age", "ok") in {row[:3] for row in cli}
