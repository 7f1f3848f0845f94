"""The dr_drill DAG through dag.test(): the whole service into a scratch cluster, removed after."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core.drill import record as drills
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.pgtools import default_install, same_major
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.integration.conftest import conninfo
from tests.support.backups import make_backup


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.fixture
def backups(backup_env: dict[str, Any], pg_cluster: ClusterBase) -> dict[str, Manifest]:
    storage = LocalStorage(backup_env["root"])
    return {db: make_backup(storage, backup_env["catalog"], conninfo(pg_cluster, db),
                            target=target)
            for db, target in (("af_source", "pg_source"), ("af_second", "pg_source.af_second"))}


def _scratch_folder(dag_run: Any) -> Path:
    started = dag_run.get_task_instance("start_server").xcom_pull(task_ids="start_server")
    return Path(started["folder"])


def test_monthly_drill_records_the_whole_service_rto_and_removes_the_cluster(
    run_dag: Callable[..., Any], backups: dict[str, Manifest], backup_env: dict[str, Any],
) -> None:
    dag_run = run_dag("dr_drill")

    assert _states(dag_run) == {"start_server": "success", "recover": "success",
                                "remove_server": "success"}
    assert not _scratch_folder(dag_run).exists()
    report = dag_run.get_task_instance("recover").xcom_pull(task_ids="recover", key="report")
    assert report["kind"] == "dr_drill" and report["passed"] is True
    assert {d["database"]: d["backup_id"] for d in report["databases"]} == {
        db: m.backup_id for db, m in backups.items()}
    assert "on the drill server" in report["catalog"] and report["rebuilt_records"] == 2
    [drill] = [d for d in drills.history(backup_env["catalog"]) if d.strategy == "dr_drill"]
    assert drill.target == "*" and drill.passed is True
    assert drill.rto_seconds == report["rto_seconds"] > 0
    assert {c.name for c in drill.checks} >= {"af_source:row_counts", "af_second:sequences"}
    with backup_env["catalog"].cursor() as cur:
        cur.execute("SELECT kind, passed FROM recovery_runs")
        assert cur.fetchall() == [{"kind": "dr_drill", "passed": True}]
    assert Path(report["report_uri"].removeprefix("file://")).is_file()


def test_a_mismatch_fails_the_drill_and_the_cluster_is_still_removed(
    run_dag: Callable[..., Any], backups: dict[str, Manifest], backup_env: dict[str, Any],
) -> None:
    storage = LocalStorage(backup_env["root"])
    manifest = backups["af_second"]
    key = manifest.key.rsplit("/", 1)[0] + "/manifest.json"
    manifest.table_counts["app.orders"] += 1
    storage.put_bytes(key, manifest.to_json())

    dag_run = run_dag("dr_drill")
    assert _states(dag_run) == {"start_server": "success", "recover": "failed",
                                "remove_server": "success"}
    assert not _scratch_folder(dag_run).exists()
    [drill] = [d for d in drills.history(backup_env["catalog"]) if d.strategy == "dr_drill"]
    assert drill.passed is False and "app.orders" in (drill.error or "")


def test_upgrade_rehearsal_onto_the_next_major_with_a_backup_chosen_in_the_form(
    run_dag: Callable[..., Any], backups: dict[str, Manifest], pg_cluster: ClusterBase,
    backup_env: dict[str, Any],
) -> None:
    """The bootstrap installs 14-18: a 15 source is rehearsed on a real 16 cluster, with the
    older of af_second's two backups named in the form (af_source gets its newest)."""
    newer = make_backup(LocalStorage(backup_env["root"]), backup_env["catalog"],
                        conninfo(pg_cluster, "af_second"), target="pg_source.af_second")
    chosen = backups["af_second"].backup_id
    assert newer.started_at > backups["af_second"].started_at  # the one chosen by default
    dag_run = run_dag("dr_drill", run_conf={"next_major": True, "backup_ids": [chosen]})
    assert _states(dag_run) == {"start_server": "success", "recover": "success",
                                "remove_server": "success"}
    started = dag_run.get_task_instance("start_server").xcom_pull(task_ids="start_server")
    upgrade = pg_cluster.server_major() + 1
    assert started["next_major"] == upgrade
    assert started["bin"] == str(same_major("initdb", upgrade, "the test").bindir)
    report = dag_run.get_task_instance("recover").xcom_pull(task_ids="recover", key="report")
    assert report["passed"] is True
    assert {d["database"]: d["backup_id"] for d in report["databases"]} == {
        "af_source": backups["af_source"].backup_id, "af_second": chosen}
    assert not _scratch_folder(dag_run).exists()


def test_upgrade_rehearsal_names_the_missing_major(
    run_dag: Callable[..., Any], backups: dict[str, Manifest], pg_cluster: ClusterBase,
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker with only the source's major: AMPRENTA_PG_BINDIR pins the tools to that one
    folder, so the next major is refused, naming its package."""
    source = pg_cluster.server_major()
    found = default_install("initdb")
    assert found is not None and found.major == source
    monkeypatch.setenv("AMPRENTA_PG_BINDIR", str(found.bindir))
    before = set(Path("/tmp").glob("amprenta-dr-drill-*"))
    dag_run = run_dag("dr_drill", run_conf={"next_major": True})
    states = _states(dag_run)
    assert (states["start_server"], states["recover"]) == ("failed", "upstream_failed")
    out, err = capfd.readouterr()
    assert f"needs initdb of PostgreSQL {source + 1} (installed: {found.version})" in out + err
    assert f"apt-get install -y postgresql-{source + 1}" in out + err
    assert set(Path("/tmp").glob("amprenta-dr-drill-*")) == before  # nothing left behind
