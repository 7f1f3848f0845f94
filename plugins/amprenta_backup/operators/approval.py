"""The approval gate of the manual DAGs: plan -> (approval) -> write, and the checks the
plan and writing tasks make."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, TriggerRule
from airflow.sdk.definitions.param import DagParam
from airflow.sdk.exceptions import AirflowFailException

from amprenta_backup.core.settings import TaskSettings
from amprenta_backup.operators.engine import EngineOperator, fail_without_retry

if TYPE_CHECKING:
    from airflow.sdk import Context


def require_approval(task: BaseOperator, context: Context, approval_task_id: str,
                     what: str, dag_hint: str) -> None:
    """Go on only if an ApprovalOperator upstream of ``task`` was answered Approve.

    An approval marked success by hand (no answer) is refused, as is a missing one.

    :param what: what needs the approval, for the message (``replacing database 'x'``)
    :param dag_hint: which DAG does it right, for the message
    """
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    upstream = task.get_flat_relatives(upstream=True)
    if not any(isinstance(t, ApprovalOperator) for t in upstream):
        raise AirflowFailException(
            f"{what} needs an approval: put an ApprovalOperator upstream of this task "
            f"({dag_hint})")
    answer = context["ti"].xcom_pull(task_ids=approval_task_id)
    chosen = answer.get("chosen_options") if isinstance(answer, Mapping) else None
    if isinstance(chosen, list | tuple) and ApprovalOperator.APPROVE in chosen:
        return
    raise AirflowFailException(
        f"{what} needs an explicit {ApprovalOperator.APPROVE} of task {approval_task_id!r}, "
        f"and its answer is "
        f"{chosen if chosen is not None else 'missing (was it marked success by hand?)'}; "
        f"nothing was touched. Run the DAG again and answer {ApprovalOperator.APPROVE} in "
        "the approval form")


APPROVAL_TIMEOUT = timedelta(hours=4)


def assigned_users() -> list[Any]:
    """The users of ``BACKUP_APPROVERS`` as the approval operator's ``assigned_users``: Airflow
    lets only them answer (HTTP 403 for anyone else)."""
    return [{"id": user, "name": user} for user in TaskSettings.from_env().approvers]


def approval_gate(plan: BaseOperator, run: BaseOperator, *, task_id: str, subject: str,
                  body: str, backup_id: str = "", target: str = "") -> BaseOperator:
    """Wire ``plan >> [approval, run]`` and ``approval >> run``: the plan task branches to
    one of them, and ``run`` goes on when what ran before it succeeded (a rejected approval
    skips it). Returns the ``ApprovalOperator`` (answer within 4 hours, by the users of
    ``BACKUP_APPROVERS`` when set); when it starts waiting, the alert channels hear of it,
    naming ``backup_id`` and ``target`` (both templated, like ``subject`` and ``body``)."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from amprenta_backup.notifiers.approval import ApprovalWaitingNotifier

    approve = ApprovalOperator(
        task_id=task_id, subject=subject, body=body, response_timeout=APPROVAL_TIMEOUT,
        assigned_users=assigned_users() or None,
        notifiers=[ApprovalWaitingNotifier(backup_id=backup_id, target=target)])
    run.trigger_rule = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    plan >> [approve, run]
    approve >> run
    return approve


def branch_on_plan(task: BaseOperator, context: Context, plan: Any, *, noun: str,
                   dry_run: bool, needs_approval: bool, approval_task_id: str,
                   run_task_id: str) -> str | list[str]:
    """Log ``plan`` and push it (XCom key ``plan``); the branch a plan task follows:
    nothing for a dry run, else the approval task or straight to the writing task."""
    task.log.info("%s plan:\n%s", noun, plan.text())
    context["ti"].xcom_push(key="plan", value=plan.to_dict())
    if dry_run:
        task.log.info("dry run: nothing was touched and nothing will be")
        return []
    return approval_task_id if needs_approval else run_task_id


def pulled_plan(context: Context, plan_task_id: str, noun: str, key: str,
                kind: type) -> Mapping[str, Any]:
    """The plan ``plan_task_id`` pushed, which must hold ``key`` of type ``kind``; else the
    task fails without retry, saying to clear the plan task too."""
    plan = context["ti"].xcom_pull(task_ids=plan_task_id, key="plan")
    if not isinstance(plan, Mapping) or not isinstance(plan.get(key), kind):
        raise AirflowFailException(
            f"no {noun} plan in the XCom of task {plan_task_id!r} (key plan): the "
            f"{noun} carries out the plan that was checked (and approved); clear the plan "
            "task together with this one, or run the DAG again")
    return plan


class PlanGatedOperator(EngineOperator):
    """Base of the plan and writing tasks of a manual DAG: the request (templated, checked
    when the task runs) and the ids of the plan, approval and writing (``run``) tasks.

    A refusal names the request's fields by the trigger form's labels (the titles of the DAG
    params the request's fields come from): ``Confirm: sales``, not ``confirm='sales'``."""

    template_fields: Sequence[str] = ("request",)

    def __init__(self, *, request: Mapping[str, Any], approval_task_id: str,
                 run_task_id: str, plan_task_id: str = "plan", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request = request
        self.plan_task_id = plan_task_id
        self.approval_task_id = approval_task_id
        self.run_task_id = run_task_id
        # request field -> the DAG param it is read from (dag.param("target") ...)
        self.form_fields = {field: value.serialize()["name"] for field, value in request.items()
                            if isinstance(value, DagParam)}

    def form_words(self) -> dict[str, str]:
        """Request field -> its label in the trigger form."""
        if not self.form_fields:  # a request of plain values (tests, Jinja): no form
            return {}
        params = self.dag.params
        return {field: params.get_param(name).schema.get("title") or name
                for field, name in self.form_fields.items() if name in params}

    def refusals(self) -> AbstractContextManager[None]:
        """:func:`fail_without_retry` in the form's words."""
        return fail_without_retry(self.form_words())
