"""Replay operators: after a restore to a point, list the writer DAG runs it took away (the
log, XCom ``replay`` and the catalog's ``replay_plans``), and re-run them after an approval."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk.exceptions import AirflowFailException

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.restore.replay import RESTORE, ReplayPlan, parse_time
from amprenta_backup.core.restore.request import REPLACE
from amprenta_backup.hooks.replay import make_replay_plan, replay_runs, target_writers
from amprenta_backup.operators.approval import pulled_plan, require_approval
from amprenta_backup.operators.engine import EngineOperator, fail_without_retry

if TYPE_CHECKING:
    from airflow.sdk import Context

XCOM_KEY = "replay"


class ReplayPlanOperator(EngineOperator, BaseBranchOperator):
    """After a ``replace`` restore, the runs of the database's writer DAGs whose data the
    restored backup does not hold (it was taken before they ran): logged as ``N runs to
    redo``, saved in the catalog and pushed to XCom (key ``replay``). Follows
    ``approval_task_id`` when ``replay`` is on and there are runs to redo, else nothing.

    :param replay: whether to offer re-running them (templated; ``True``/``"True"``)
    :param plan_task_id: the restore plan task (its XCom ``plan``: backup time, writers)
    :param approval_task_id: the approval in front of the replay task
    """

    template_fields: Sequence[str] = ("replay",)
    ui_color = "#d9ead3"

    def __init__(self, *, replay: bool | str = False, plan_task_id: str = "plan",
                 approval_task_id: str = "approve_replay", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replay = replay
        self.plan_task_id = plan_task_id
        self.approval_task_id = approval_task_id

    def choose_branch(self, context: Context) -> str | list[str]:
        restore = pulled_plan(context, self.plan_task_id, "restore", "backup_id", str)
        if restore["request"]["mode"] != REPLACE:
            self.log.info("restored into new database %r: the writers' databases keep their "
                          "data, so no DAG run needs to run again", restore["database"])
            return []
        pipelines: Mapping[str, Any] = restore.get("pipelines") or {}
        with fail_without_retry():
            plan = make_replay_plan(
                RESTORE, pipelines.get("target") or restore["source_target"],
                restore["database"], datetime.fromisoformat(restore["backup_started_at"]),
                f"backup {restore['backup_id']} taken then", list(pipelines.get("writers") or ()))
        return self.offer(context, plan)

    def offer(self, context: Context, plan: ReplayPlan) -> str | list[str]:
        """Log, save and push ``plan``; the branch: the approval when runs may be redone."""
        self.log.info("replay plan:\n%s", plan.text())
        key = self.engine.replay_book().save(plan, context["dag"].dag_id,
                                                  context["run_id"])
        context["ti"].xcom_push(key=XCOM_KEY, value={**plan.to_dict(), "id": key})
        if not plan.runs:
            return []
        if self.replay not in (True, "True", "true"):
            self.log.info("replay is off: re-run them by hand (clear each run), or run this "
                          "DAG again with replay on")
            return []
        return self.approval_task_id


class ReplayOperator(EngineOperator):
    """Re-run exactly the runs of the replay plan (clears each through the REST API), once
    ``approval_task_id`` was answered Approve; records it in the catalog.

    :param plan_task_id: the :class:`ReplayPlanOperator`
    :param approval_task_id: its approval task
    """

    ui_color = "#b6d7a8"

    def __init__(self, *, plan_task_id: str = "replay_plan",
                 approval_task_id: str = "approve_replay", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.approval_task_id = approval_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        pushed = context["ti"].xcom_pull(task_ids=self.plan_task_id, key=XCOM_KEY)
        if not isinstance(pushed, Mapping) or "id" not in pushed:
            raise AirflowFailException(f"no replay plan in the XCom of task "
                                       f"{self.plan_task_id!r} (key {XCOM_KEY}): clear it too")
        plan = ReplayPlan.from_dict(pushed)
        require_approval(self, context, self.approval_task_id,
                         f"re-running {plan.count} DAG run(s)", "the restore DAG does")
        note = (f"re-run by {context['dag'].dag_id} run {context['run_id']}: restored "
                f"{plan.database!r} to {plan.point.isoformat()} ({plan.point_source})")
        with fail_without_retry():
            cleared = replay_runs(plan, note)
        rows = [{"dag_id": run["dag_id"], "run_id": run["dag_run_id"], "state": run["state"],
                 "is_paused": run["is_paused"]} for run in cleared]
        self.engine.replay_book().mark_replayed(str(pushed["id"]), rows)
        for row in rows:
            self.log.info("cleared %s run %s: it runs again%s", row["dag_id"], row["run_id"],
                          " once the DAG is unpaused (it is paused)" if row["is_paused"] else "")
        return {"id": pushed["id"], "headline": plan.headline(), "cleared": rows}


class PitrReplayPlanOperator(EngineOperator):
    """After a point-in-time restore (or drill) of ``BACKUP_WAL_TARGET`` to T, the runs of its
    writer DAGs that ran after T: what putting the restored cluster in place would take away.
    A report only (the log, the catalog's ``replay_plans``, XCom ``return_value``): the
    restored cluster runs beside the source, which still holds those runs' rows.

    :param kind: ``pitr_restore`` or ``pitr_drill``
    :param restore_task_id: the restore task (its XCom: ``target_time``, ``recovered_to``)
    """

    ui_color = "#d9ead3"

    def __init__(self, *, kind: str, restore_task_id: str = "restore", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.restore_task_id = restore_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        restored = context["ti"].xcom_pull(task_ids=self.restore_task_id)
        if not isinstance(restored, Mapping):
            raise AirflowFailException(f"task {self.restore_task_id!r} left no restore report")
        with fail_without_retry():
            given = parse_time(restored.get("target_time"))
            point = given or parse_time(restored.get("recovered_to"))
            if point is None:
                raise ConfigError("the restore report holds neither target_time nor "
                                  "recovered_to: nothing to measure the lost runs from")
            pitr = self.engine.pitr
            target, conn_id, conn = pitr.target, pitr.settings.conn_id, pitr.cluster_conninfo()
            names = (conn_id, f"{conn_id}.{conn.dbname}", target)
            plan = make_replay_plan(
                self.kind, target, conn.dbname, point,
                "PITR target time" if given else "last replayed commit",
                target_writers(names, conn))
        self.log.info("replay plan (if the restored cluster replaced %s):\n%s", target,
                      plan.text())
        key = self.engine.replay_book().save(plan, context["dag"].dag_id, context["run_id"])
        return {**plan.to_dict(), "id": key}
