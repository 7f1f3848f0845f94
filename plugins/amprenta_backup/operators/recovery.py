"""Disaster recovery operators: plan the whole-service recovery and branch on it, then recover."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from amprenta_backup.core.recovery.plan import RecoveryRequest
from amprenta_backup.core.recovery.report import RecoveryReport
from amprenta_backup.core.recovery.run import Planned, Recovery
from amprenta_backup.core.restore.writers import PipelinePlan
from amprenta_backup.hooks.airflow_api import databases_pipelines, quiesce_plan
from amprenta_backup.hooks.context import run_context
from amprenta_backup.operators.approval import (
    PlanGatedOperator,
    branch_on_plan,
    pulled_plan,
    require_approval,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


def finish(task: BaseOperator, context: Context, report: RecoveryReport) -> dict[str, Any]:
    """Push the report (key ``report``); fail the task unless every database passed."""
    data = report.to_dict()
    context["ti"].xcom_push(key="report", value=data)
    task.log.info("report: %s", report.report_uri)  # the summary was logged by the recovery
    if not report.passed:
        raise AirflowException(report.summary)
    return data


class _RecoveryBase(PlanGatedOperator):
    """The request (templated), checked when the task runs, and the ids of the plan,
    approval and recover tasks."""

    def __init__(self, *, approval_task_id: str = "approve_nonempty",
                 recover_task_id: str = "recover",
                 **kwargs: Any) -> None:
        super().__init__(approval_task_id=approval_task_id, run_task_id=recover_task_id, **kwargs)

    def recovery_request(self) -> RecoveryRequest:
        with self.refusals():
            return RecoveryRequest.from_mapping(self.request)

    def recovery(self) -> Recovery:
        return self.engine.recovery()


class RecoveryPlanOperator(_RecoveryBase, BaseBranchOperator):
    """Check a recovery against storage, the catalog and the new server; log the plan.

    Touches nothing. Pushes the plan to XCom (key ``plan``), then follows
    ``approval_task_id`` when the server already holds databases, ``recover_task_id`` when it
    is empty, and nothing for a dry run. A refused request fails without retry, saying why.

    :param request: :class:`RecoveryRequest` fields (templated: DagParams or Jinja)
    :param recover_task_id: the task that recovers (or ``pause_writers`` in front of it)
    :param approval_task_id: the approval task in front of it for a non-empty server
    :param pause_writers: whether the recovery pauses the DAGs that write to the recovered
        databases (templated); the plan names them either way
    """

    template_fields: Sequence[str] = (*_RecoveryBase.template_fields, "pause_writers")
    ui_color = "#fff2cc"

    def __init__(self, *, pause_writers: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pause_writers = pause_writers

    def choose_branch(self, context: Context) -> str | list[str]:
        request = self.recovery_request()
        pause = self.pause_writers in (True, "True", "true") and not request.dry_run
        with self.refusals():
            recovery_plan = self.recovery().plan(request).plan
            pipelines = databases_pipelines(
                [(d.target, d.database) for d in recovery_plan.databases])
            plan = PipelinePlan(recovery_plan, pipelines, quiesce_plan(pipelines, pause))
        return branch_on_plan(self, context, plan, noun="recovery", dry_run=request.dry_run,
                              needs_approval=recovery_plan.needs_approval,
                              approval_task_id=self.approval_task_id,
                              run_task_id=self.run_task_id)


class RecoverOperator(_RecoveryBase):
    """Carry out the plan of the plan task: the same backups, onto the same server.

    On a server that already held databases it runs only after an explicit Approve. Pushes
    the report (key ``report``) and fails when any database failed or mismatched.

    :param request: the same :class:`RecoveryRequest` fields the plan task was given
    :param plan_task_id: the :class:`RecoveryPlanOperator` whose plan this task carries out
    :param approval_task_id: the approval task checked for a non-empty server
    """

    ui_color = "#f4cccc"

    def execute(self, context: Context) -> dict[str, Any]:
        approved = self._approved_plan(context)
        request = dataclasses.replace(self.recovery_request(), allow_nonempty=True)
        recovery = self.recovery()
        with self.refusals():
            planned = recovery.plan(request)
            self._check_unchanged(approved, planned)
            report = recovery.run(request, run_context(context), planned)
        return finish(self, context, report)

    def _approved_plan(self, context: Context) -> Mapping[str, Any]:
        plan = pulled_plan(context, self.plan_task_id, "recovery", "databases", list)
        if plan.get("needs_approval"):
            require_approval(self, context, self.approval_task_id,
                             f"writing to {plan.get('server')}, which already holds "
                             f"{', '.join(plan.get('existing_databases') or [])}",
                             "the disaster_recovery DAG does")
        return plan

    def _check_unchanged(self, approved: Mapping[str, Any], planned: Planned) -> None:
        now = planned.plan.to_dict()
        keys = ("databases", "existing_databases", "server")
        if any(now[key] != approved.get(key) for key in keys):
            raise AirflowFailException(
                f"the recovery plan changed since task {self.plan_task_id!r} made it (a new "
                "backup, or a database appeared on the server); nothing was touched. Run the DAG "
                "again to plan (and approve) what is there now")
