"""Restore operators: check a request and branch on its plan, then restore."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk.exceptions import AirflowFailException

from amprenta_backup.core.restore.request import REPLACE, RestoreRequest
from amprenta_backup.core.restore.writers import PipelinePlan
from amprenta_backup.hooks.airflow_api import plan_pipelines, quiesce_plan
from amprenta_backup.hooks.replay import restore_replay_plan
from amprenta_backup.operators.approval import (
    PlanGatedOperator,
    branch_on_plan,
    pulled_plan,
    require_approval,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from amprenta_backup.core.restore.run import Restorer


class _RestoreBase(PlanGatedOperator):
    """What both restore operators share: the request, checked when the task runs, where to
    read from (``from_copy``: the second copy only; otherwise the primary, falling back to the
    copy when it cannot be read or the backup is damaged there), and the ids of the plan,
    approval and restore tasks."""

    template_fields: Sequence[str] = ("request", "from_copy")

    def __init__(self, *, approval_task_id: str = "approve_replace",
                 restore_task_id: str = "restore", from_copy: bool | str = False,
                 **kwargs: Any) -> None:
        super().__init__(approval_task_id=approval_task_id, run_task_id=restore_task_id, **kwargs)
        self.from_copy = from_copy

    def restorer(self) -> Restorer:
        with self.refusals():
            return self.engine.restorer(from_copy=self.from_copy in (True, "True", "true"))

    def restore_request(self) -> RestoreRequest:
        with self.refusals():
            return RestoreRequest.from_mapping(self.request)


class RestorePlanOperator(_RestoreBase, BaseBranchOperator):
    """Check a restore request against the catalog, storage and target server; log the plan.

    Touches nothing. Pushes the plan to XCom (key ``plan``) and then follows
    ``restore_task_id`` for ``new_database``, ``approval_task_id`` for ``replace``, and
    nothing for a dry run. A refused request fails the task without retry, saying why.

    :param request: :class:`RestoreRequest` fields (templated: DagParams or Jinja)
    :param restore_task_id: the task that restores
    :param approval_task_id: the approval task in front of it for ``replace``
    :param pause_writers: whether a ``replace`` pauses the writer DAGs (templated; the plan
        says which, and which of their tasks run now)
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    template_fields: Sequence[str] = (*_RestoreBase.template_fields, "pause_writers")
    ui_color = "#fff2cc"

    def __init__(self, *, pause_writers: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pause_writers = pause_writers

    def choose_branch(self, context: Context) -> str | list[str]:
        request = self.restore_request()
        pause = (self.pause_writers in (True, "True", "true") and request.mode == REPLACE
                 and not request.dry_run)
        with self.refusals():
            plan = self.restorer().plan(request)
            pipelines = plan_pipelines(plan)
            quiesce = quiesce_plan(pipelines, pause)
            if request.mode == REPLACE:  # the writer runs a replace takes away
                replay = restore_replay_plan(plan, pipelines)
                self.log.info("%s", replay.text())
                context["ti"].xcom_push(key="replay", value=replay.to_dict())
        return branch_on_plan(self, context, PipelinePlan(plan, pipelines, quiesce),
                              noun="restore",
                              dry_run=request.dry_run, needs_approval=request.mode == REPLACE,
                              approval_task_id=self.approval_task_id,
                              run_task_id=self.run_task_id)


class RestoreOperator(_RestoreBase):
    """Restore the backup the plan chose; report the duration (RTO) and restored row counts.

    The backup id comes from the plan task's XCom, so ``latest`` is resolved once, before the
    approval, and a newer backup made while the approval waited is not the one restored.
    ``replace`` runs only with an ``ApprovalOperator`` upstream whose answer was Approve (a
    rejected approval skips this task; an approval marked success by hand, without an answer,
    is refused).

    :param request: :class:`RestoreRequest` fields (templated: DagParams or Jinja); the same
        the plan task was given
    :param plan_task_id: the :class:`RestorePlanOperator` whose plan (XCom key ``plan``) this
        task carries out
    :param approval_task_id: the approval task whose answer is checked for ``replace``
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    ui_color = "#f4cccc"

    def execute(self, context: Context) -> dict[str, Any]:
        request = self._planned_request(context)
        if request.mode == REPLACE and not request.dry_run:
            self._check_approval(context, request)
        with self.refusals():
            result = self.restorer().run(request)  # logs the outcome and RTO, once
        return result.to_dict()

    def _planned_request(self, context: Context) -> RestoreRequest:
        """The request, with the backup id the plan resolved (``latest`` is not looked up
        again: the approval may have waited hours)."""
        request = self.restore_request()
        plan = pulled_plan(context, self.plan_task_id, "restore", "backup_id", str)
        if plan.get("request") != request.to_dict():
            raise AirflowFailException(
                f"the plan of task {self.plan_task_id!r} was made for another request "
                f"({plan.get('request')}); clear the plan task together with this one")
        self.log.info("restoring backup %s, as planned by task %s", plan["backup_id"],
                      self.plan_task_id)
        with self.refusals():
            return dataclasses.replace(request, backup_id=plan["backup_id"])

    def _check_approval(self, context: Context, request: RestoreRequest) -> None:
        require_approval(self, context, self.approval_task_id,
                         f"replacing database {request.database!r}",
                         "mode replace drops a database; the restore DAG does")
