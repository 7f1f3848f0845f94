"""The check every writing task makes of the ApprovalOperator in front of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

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
