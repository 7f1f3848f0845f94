"""The restore DAG through dag.test(): a real server, real storage, and Airflow's own approval."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core.models import Manifest
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.airflow.conftest import manual_gated_dag
from tests.integration.conftest import conninfo
from tests.support.backups import make_backup
from tests.support.receivers import alert_receivers

SENTINEL = "CREATE TABLE sentinel (note text); INSERT INTO sentinel VALUES ('still here')"


# after a new_database restore replay_plan finds nothing taken away; without a restore it
# does not run
NOTHING_TO_REPLAY = {"replay_plan": "success", "approve_replay": "skipped", "replay": "skipped"}
NO_REPLAY_PLAN = {"replay_plan": "skipped", "approve_replay": "skipped", "replay": "skipped"}


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.fixture
def backup(backup_env: dict[str, Any], pg_cluster: ClusterBase) -> Manifest:
    """A completed backup of ``af_source`` (target ``pg_source``) in the run's storage."""
    return make_backup(LocalStorage(backup_env["root"]), backup_env["catalog"],
                       conninfo(pg_cluster, "af_source"))


@pytest.fixture
def database(pg_cluster: ClusterBase, backup_env: dict[str, Any]) -> Iterator[str]:
    """A name for the restored database; dropped afterwards."""
    name = f"af_restored_{backup_env['catalog_db'][-8:]}"
    yield name
    pg_cluster.drop_database(name)


@pytest.fixture
def occupied(pg_cluster: ClusterBase, database: str) -> str:
    """``database``, existing, with a row someone cares about."""
    pg_cluster.create_database(database)
    pg_cluster.execute(SENTINEL, dbname=database)
    return database


def _logged(capfd: pytest.CaptureFixture[str]) -> str:
    """What the run printed and wrote to its task logs."""
    out, err = capfd.readouterr()
    return out + err + "".join(path.read_text(errors="replace")
                               for path in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log"))


def _conf(backup: Manifest, database: str, **extra: Any) -> dict[str, Any]:
    return {"backup_id": backup.backup_id, "target_conn_id": "pg_source",
            "target_database": database, **extra}


def _has_sentinel(cluster: ClusterBase, database: str) -> bool:
    return cluster.query("SELECT to_regclass('public.sentinel') IS NOT NULL",
                         dbname=database)[0][0] is True


def _required(dag: Any) -> set[str]:
    """The form fields Airflow's UI marks required (an asterisk): no null in their type."""
    return {name for name, param in dag.params.items()
            if "null" not in ([param.schema["type"]] if isinstance(param.schema["type"], str)
                              else param.schema["type"])}


def test_manual_only_with_a_typed_form_and_the_approval_before_the_restore(
    airflow_db: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    monkeypatch.setenv("BACKUP_APPROVERS", "alice, bob")
    dag = manual_gated_dag("restore", "approve_replace", "restore")
    schema = {name: param.schema for name, param in dag.params.items()}
    assert schema["mode"]["enum"] == ["new_database", "replace"]
    assert dag.params["mode"] == "new_database" and dag.params["jobs"] == 1
    assert schema["jobs"]["type"] == "integer" and schema["dry_run"]["type"] == "boolean"
    assert schema["schemas"]["type"] == ["null", "array"]
    assert schema["confirm"]["type"] == ["null", "string"]

    # the form asks for the target database and for nothing optional
    assert "target_database" in _required(dag)
    assert not {"target", "target_conn_id", "confirm", "schemas", "tables"} & _required(dag)
    # "target" is only ever the backup target; where the restore writes reads "onto/into"
    assert {name: schema[name]["title"] for name in ("target", "target_conn_id",
                                                     "target_database", "confirm")} == {
        "target": "Backup target", "target_conn_id": "Restore onto connection",
        "target_database": "Restore into database", "confirm": "Confirm"}
    database = dag.params.get_param("target_database")
    for bad in ("", " analytics", "analytics ", "ana\nlytics", "x" * 64):
        with pytest.raises(ParamValidationError):
            database.resolve(value=bad)
    assert database.resolve(value="analytics_2") == "analytics_2"
    with pytest.raises(ParamValidationError, match="target_database"):
        dag.test(run_conf={"backup_id": "latest", "target": "pg_source", "target_database": ""})

    # only the users of BACKUP_APPROVERS may answer the approval
    assert dag.get_task("approve_replace").assigned_users == [
        {"id": "alice", "name": "alice"}, {"id": "bob", "name": "bob"}]

    # after the Approve the writers are paused and resumed (a teardown) around the restore;
    # on by default
    pause, resume = dag.get_task("pause_writers"), dag.get_task("resume_writers")
    assert pause.upstream_task_ids == {"approve_replace"}
    assert resume.is_teardown
    assert resume.upstream_task_ids == {"restore", "pause_writers"}
    assert dag.params["pause_writers"] is True


def test_an_empty_database_name_is_refused_by_the_plan_too() -> None:
    from amprenta_backup.core.errors import ConfigError
    from amprenta_backup.core.restore.request import RestoreRequest

    for empty in ("", None):
        with pytest.raises(ConfigError, match="the restore needs the target database"):
            RestoreRequest.from_mapping({"backup_id": "latest", "source_target": "pg_source",
                                         "database": empty})
    with pytest.raises(ConfigError, match="starts or ends with a space"):
        RestoreRequest.from_mapping({"backup_id": "latest", "source_target": "pg_source",
                                     "database": " analytics"})


def test_new_database_restores_at_once_without_waiting_for_an_approval(
    run_dag: Callable[..., Any], backup: Manifest, database: str, pg_cluster: ClusterBase,
    capfd: pytest.CaptureFixture[str],
) -> None:
    core: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = core.append  # type: ignore[method-assign]
    package = logging.getLogger("amprenta_backup")
    package.addHandler(handler)
    level, package.level = package.level, logging.INFO
    # a logging dictConfig of an earlier test in this process may have disabled the
    # package's loggers (disable_existing_loggers); a worker configures logging first
    disabled = [logger for name, logger in logging.root.manager.loggerDict.items()
                if name.startswith("amprenta_backup") and isinstance(logger, logging.Logger)
                and logger.disabled]
    for logger in disabled:
        logger.disabled = False
    try:
        dag_run = run_dag("restore", run_conf=_conf(backup, database))
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        for logger in disabled:
            logger.disabled = True

    assert _states(dag_run) == {"plan": "success", "approve_replace": "skipped",
                                "pause_writers": "skipped", "restore": "success",
                                "resume_writers": "skipped", **NOTHING_TO_REPLAY}
    assert_databases_equal(pg_cluster, "af_source", pg_cluster, database)
    result = dag_run.get_task_instance("restore").xcom_pull(task_ids="restore")
    assert result["row_counts_match"] is True and result["seconds"] > 0
    rto_line = f"restored backup {backup.backup_id} of pg_source "
    # once, by the restore itself (core); the operator does not log it again in the task log
    (rto,) = [r.getMessage() for r in core if rto_line in r.getMessage()]
    assert [line for line in _logged(capfd).splitlines()
            if rto_line in line and "airflow.task.operators" in line] == []
    assert f"into database '{database}'" in rto and "(RTO; plan and checksum" in rto


def test_latest_as_a_dry_run_only_plans(
    run_dag: Callable[..., Any], backup: Manifest, database: str, pg_cluster: ClusterBase,
) -> None:
    dag_run = run_dag("restore", run_conf={"backup_id": "latest", "target": "pg_source",
                                           "target_database": database, "dry_run": True})

    assert _states(dag_run) == {"plan": "success", "approve_replace": "skipped",
                                "pause_writers": "skipped", "restore": "skipped",
                                "resume_writers": "skipped", **NO_REPLAY_PLAN}
    plan = dag_run.get_task_instance("plan").xcom_pull(task_ids="plan", key="plan")
    assert plan["backup_id"] == backup.backup_id and plan["database_exists"] is False
    assert not pg_cluster.database_exists(database)


def test_replace_without_confirmation_fails_the_plan_and_touches_nothing(
    run_dag: Callable[..., Any], backup: Manifest, occupied: str, pg_cluster: ClusterBase,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dag_run = run_dag("restore", run_conf=_conf(backup, occupied, mode="replace"),
                      mark_success_pattern="approve_replace")

    assert str(dag_run.state) == "failed"
    assert _states(dag_run)["plan"] == "failed"
    assert _states(dag_run)["restore"] in ("upstream_failed", "skipped")
    assert _has_sentinel(pg_cluster, occupied)
    # in the form's words (its labels), not the request's Python names
    logged = _logged(capfd)
    assert f"Mode replace drops database '{occupied}': type its name again as Confirm: " \
           f"{occupied} to go ahead (Confirm was not given)" in logged
    assert "confirm=" not in logged and "confirm was None" not in logged


def test_an_approval_marked_success_without_an_answer_does_not_replace(
    run_dag: Callable[..., Any], backup: Manifest, occupied: str, pg_cluster: ClusterBase,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Marking approve_replace success by hand (here: dag.test's mark_success_pattern) gives
    no answer; only an explicit Approve may drop the database."""
    dag_run = run_dag("restore", run_conf=_conf(backup, occupied, mode="replace",
                                                confirm=occupied),
                      mark_success_pattern="approve_replace")

    assert _states(dag_run) == {"plan": "success", "approve_replace": "success",
                                "pause_writers": "skipped", "restore": "failed",
                                "resume_writers": "skipped", "replay_plan": "upstream_failed",
                                "approve_replay": "upstream_failed",
                                "replay": "upstream_failed"}
    assert _has_sentinel(pg_cluster, occupied)
    assert f"replacing database '{occupied}' needs an explicit Approve of task " \
           "'approve_replace'" in _logged(capfd)


def test_the_restore_task_refuses_to_run_without_the_plan_it_carries_out(
    run_dag: Callable[..., Any], backup: Manifest, database: str, pg_cluster: ClusterBase,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """``plan`` marked success by hand leaves no plan in XCom: nothing to carry out."""
    dag_run = run_dag("restore", run_conf=_conf(backup, database),
                      mark_success_pattern="plan|approve_replace")

    assert _states(dag_run)["restore"] == "failed"
    assert not pg_cluster.database_exists(database)
    assert "no restore plan in the XCom of task 'plan'" in _logged(capfd)


class _Approver(threading.Thread):
    """Answers the approval through Airflow's REST API (the route the UI's form calls), from
    another thread while dag.test() waits in the main one: as each of ``users`` in turn (a
    bearer token of the simple auth manager) until one is let in, or without a token when
    every user is an admin."""

    def __init__(self, option: str, before: Callable[[], None] | None = None,
                 dag_id: str = "restore", task_id: str = "approve_replace",
                 users: tuple[str, ...] = ()) -> None:
        super().__init__(daemon=True)
        self.option = option
        self.before = before
        self.dag_id = dag_id
        self.task_id = task_id
        self.users = users
        self.status: int | None = None
        self.refused: list[tuple[int, str]] = []
        self.detail: dict[str, Any] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._answer()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _waiting_run(self) -> str | None:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        with create_session() as session:
            waiting = session.query(TaskInstance).filter(
                TaskInstance.dag_id == self.dag_id, TaskInstance.task_id == self.task_id,
                TaskInstance.state == TaskInstanceState.AWAITING_INPUT).first()
            return waiting.run_id if waiting else None

    def _answer(self) -> None:
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from fastapi.testclient import TestClient

        client = TestClient(create_app("core"))
        deadline = time.monotonic() + 120
        while (run_id := self._waiting_run()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the approval task never asked")
            time.sleep(0.5)
        if self.before:
            self.before()
        path = f"/api/v2/dags/{self.dag_id}/dagRuns/{run_id}/taskInstances/{self.task_id}/-1/" \
            "hitlDetails"
        tokens = [get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=user,
                                                                        role="admin"))
                  for user in self.users] or [None]
        for token in tokens:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            self.detail = client.get(path, headers=headers).json()
            answer = client.patch(path, headers=headers, json={
                "chosen_options": [self.option], "params_input": {}})
            self.status = answer.status_code
            if answer.status_code == 200:
                return
            self.refused.append((answer.status_code, answer.json().get("detail", "")))


@pytest.mark.parametrize("option", ["Reject", "Approve"])
def test_the_approval_answered_through_the_api_decides_whether_the_database_is_replaced(
    run_dag: Callable[..., Any], backup: Manifest, occupied: str, pg_cluster: ClusterBase,
    monkeypatch: pytest.MonkeyPatch, option: str,
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    approver = _Approver(option)
    approver.start()

    dag_run = run_dag("restore", run_conf=_conf(backup, occupied, mode="replace",
                                                confirm=occupied))
    approver.join(timeout=30)

    assert approver.error is None and approver.status == 200
    states = _states(dag_run)
    assert states["approve_replace"] == "success"
    if option == "Reject":
        assert states["restore"] == "skipped" and _has_sentinel(pg_cluster, occupied)
    else:
        assert states["restore"] == "success" and not _has_sentinel(pg_cluster, occupied)


def test_only_an_assigned_user_may_approve_and_the_alert_channels_hear_it_waits(
    run_dag: Callable[..., Any], backup: Manifest, occupied: str, pg_cluster: ClusterBase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BACKUP_APPROVERS=alice: bob (an admin, but not assigned) is refused with HTTP 403, alice
    approves. The subject names the backup the plan resolved from latest; Slack and email
    were told, once, which run waits, for which backup and database, and where to answer."""
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    monkeypatch.setenv("BACKUP_APPROVERS", "alice")
    approver = _Approver("Approve", users=("bob", "alice"))
    with alert_receivers(monkeypatch) as (slack, smtp):
        approver.start()
        dag_run = run_dag("restore", run_conf={
            "backup_id": "latest", "target": "pg_source", "target_conn_id": "pg_source",
            "target_database": occupied, "mode": "replace", "confirm": occupied})
        approver.join(timeout=30)
        messages = smtp.wait_for(1)

    assert approver.error is None and approver.status == 200
    assert approver.refused == [(403, "User=bob (id=bob) is not a respondent for the task.")]
    subject = f"Replace database {occupied} with backup {backup.backup_id}?"
    assert approver.detail["subject"] == subject
    assert approver.detail["assigned_users"] == [{"id": "alice", "name": "alice"}]
    assert approver.detail["responded_by_user"] is None  # read before the answer
    assert _states(dag_run)["restore"] == "success" and not _has_sentinel(pg_cluster, occupied)

    (text,) = slack.texts
    server = f"{pg_cluster.user}@{pg_cluster.host}:{pg_cluster.port}"
    assert text.splitlines() == [
        f"[WARNING] restore: approval waiting: {subject}",
        "DAG: restore", "Task: approve_replace", f"Run: {dag_run.run_id}",
        f"Target: database '{occupied}' on {server}", f"Backup id: {backup.backup_id}",
        f"Answer: http://localhost:8080/dags/restore/runs/{dag_run.run_id}/tasks/"
        "approve_replace/required_actions?map_index=-1",
        "Who may answer: alice",
        "Unanswered after 4 h the approval times out and nothing is written"]
    (mail,) = messages
    assert str(mail["Subject"]) == f"[amprenta-backup warning] restore: approval waiting: " \
        f"{subject}"


def test_latest_is_the_backup_planned_and_approved_not_a_newer_one(
    run_dag: Callable[..., Any], backup_env: dict[str, Any], backup: Manifest, occupied: str,
    pg_cluster: ClusterBase, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the approval waits, a newer backup of the target arrives (of another database,
    so its content differs): the restore still restores the backup the plan showed."""
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    newer: list[Manifest] = []
    approver = _Approver("Approve", before=lambda: newer.append(make_backup(
        LocalStorage(backup_env["root"]), backup_env["catalog"],
        conninfo(pg_cluster, "af_second"), target="pg_source")))
    approver.start()

    dag_run = run_dag("restore", run_conf={
        "backup_id": "latest", "target": "pg_source", "target_conn_id": "pg_source",
        "target_database": occupied, "mode": "replace", "confirm": occupied})
    approver.join(timeout=30)

    assert approver.error is None and approver.status == 200
    assert _states(dag_run)["restore"] == "success"
    ti = dag_run.get_task_instance("restore")
    assert ti.xcom_pull(task_ids="plan", key="plan")["backup_id"] == backup.backup_id
    assert ti.xcom_pull(task_ids="restore")["plan"]["backup_id"] == backup.backup_id
    (latest,) = backup_env["catalog"].find(target="pg_source", limit=1)
    assert newer and latest.backup_id == newer[0].backup_id != backup.backup_id
    assert_databases_equal(pg_cluster, "af_source", pg_cluster, occupied)


def test_a_damaged_primary_is_restored_from_the_second_copy(
    run_dag: Callable[..., Any], backup: Manifest, database: str, pg_cluster: ClusterBase,
    backup_env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from amprenta_backup.core.engine import BackupEngine
    from amprenta_backup.core.settings import BackupConfig, CopySettings
    from tests.support.backups import flip_byte, rewrite

    monkeypatch.setenv("BACKUP_COPY_STORAGE_TYPE", "local")
    monkeypatch.setenv("BACKUP_COPY_LOCAL_PATH", str(tmp_path / "copy"))
    primary = LocalStorage(backup_env["root"])
    BackupEngine(BackupConfig.from_env(), storage=primary, catalog=backup_env["catalog"],
                 copy=CopySettings.from_env()).copy_backup(backup.backup_id)
    rewrite(primary, backup.key, flip_byte)

    dag_run = run_dag("restore", run_conf=_conf(backup, database))
    assert _states(dag_run) == {"plan": "success", "approve_replace": "skipped",
                                "pause_writers": "skipped", "restore": "success",
                                "resume_writers": "skipped", **NOTHING_TO_REPLAY}
    result = dag_run.get_task_instance("restore").xcom_pull(task_ids="restore")
    assert result["plan"]["location"].startswith((tmp_path / "copy").as_uri())
    assert result["row_counts_match"] is True
    assert_databases_equal(pg_cluster, "af_source", pg_cluster, database)
    assert str(backup_env["catalog"].get(backup.backup_id).status) == "corrupt"
