"""Pause the writer DAGs before a restore writes, and resume exactly those afterwards.

``resume_writers`` is an Airflow teardown: it runs once the restore is done, whether it
succeeded, failed, or never started because ``pause_writers`` failed, so the writers come
back either way. What was paused travels in the pause task's XCom (key ``quiesced``, pushed
after each pause, so even a pause task whose worker died is undone). ``pause_writers`` is
not a setup task: Airflow wants ``all_success`` after a setup, and the restore follows a
branch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, TriggerRule
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.restore.quiesce import Quiesced, Quiescer
from amprenta_backup.core.settings import PipelineSettings
from amprenta_backup.hooks.airflow_api import AirflowApiHook

if TYPE_CHECKING:
    from airflow.sdk import Context

QUIESCED_KEY = "quiesced"


def _quiescer() -> Quiescer:
    conn_id = PipelineSettings.from_env().airflow_api_conn_id
    if not conn_id:
        raise AirflowFailException(str(ConfigError(
            "pausing the writer DAGs needs Airflow's REST API: set BACKUP_AIRFLOW_API_CONN_ID "
            "(docs/verify-and-restore.md), or run with pause_writers off")))
    return Quiescer(AirflowApiHook(conn_id))


class PauseWritersOperator(BaseOperator):
    """Pause the writers the plan named (those not paused already), then wait, at most
    ``BACKUP_QUIESCE_WAIT_SECONDS``, for their queued and running tasks to finish.

    Skips when ``enabled`` is false or the plan has no writers to pause. Any failure (the wait
    timing out included) resumes what it paused before the task fails.

    :param enabled: ``pause_writers`` (templated)
    :param plan_task_id: the plan task whose XCom holds ``quiesce`` and ``pipelines``
    :param plan_key: the key of that XCom
    """

    template_fields: Sequence[str] = ("enabled",)
    ui_color = "#d9ead3"

    def __init__(self, *, enabled: bool | str = True, plan_task_id: str = "plan",
                 plan_key: str = "plan", **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)  # a retry would not know what the first try paused
        super().__init__(**kwargs)
        self.enabled = enabled
        self.plan_task_id = plan_task_id
        self.plan_key = plan_key

    def execute(self, context: Context) -> dict[str, Any]:
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id, key=self.plan_key)
        quiesce = plan.get("quiesce") if isinstance(plan, Mapping) else None
        if self.enabled in (False, "False", "false") or not isinstance(quiesce, Mapping) \
                or not quiesce.get("enabled"):
            raise AirflowSkipException("pause_writers is off: the writer DAGs are not paused")
        writers = sorted({*quiesce.get("to_pause", ()), *quiesce.get("left_paused", ())})
        if not writers:
            raise AirflowSkipException("no DAG writes to the database: nothing to pause")
        wait = PipelineSettings.from_env().quiesce_wait_seconds
        done = _quiescer().quiesce(
            writers, wait,
            lambda so_far: context["ti"].xcom_push(key=QUIESCED_KEY, value=so_far.to_dict()))
        self.log.info("paused %s (left paused: %s); waited %.1f s for %s",
                      ", ".join(done.paused) or "nothing", ", ".join(done.left_paused) or "none",
                      done.wait_seconds, ", ".join(done.waited_for) or "no running task")
        return done.to_dict()


class ResumeWritersOperator(BaseOperator):
    """Resume exactly the DAGs the pause task paused (its XCom, key ``quiesced``); a writer
    that was paused before the restore stays paused.

    :param pause_task_id: the :class:`PauseWritersOperator`
    """

    ui_color = "#d9ead3"

    def __init__(self, *, pause_task_id: str = "pause_writers", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pause_task_id = pause_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        done = Quiesced.from_dict(
            context["ti"].xcom_pull(task_ids=self.pause_task_id, key=QUIESCED_KEY))
        if not done.paused:
            raise AirflowSkipException(f"task {self.pause_task_id} paused no DAG: nothing to "
                                       "resume")
        resumed = _quiescer().resume(done.paused)
        self.log.info("resumed %s; left paused as they were: %s", ", ".join(resumed),
                      ", ".join(done.left_paused) or "none")
        return {"resumed": resumed, "left_paused": done.left_paused}


def quiesce_around(before: BaseOperator | list[BaseOperator], run: BaseOperator, *,
                   enabled: bool | str, plan_task_id: str = "plan",
                   plan_key: str = "plan") -> tuple[BaseOperator, BaseOperator]:
    """Wire ``before >> pause_writers >> run >> resume_writers``, the resume a teardown.

    ``pause_writers`` and ``run`` go on when nothing before them failed and one succeeded (a
    skipped approval or a skipped pause is not a failure). The
    run's state stays the restore's (``on_failure_fail_dagrun`` would make the teardown the
    only leaf, and a plan that failed would end in a successful run); a failed resume alerts
    through the task's failure callbacks."""
    pause = PauseWritersOperator(task_id="pause_writers", enabled=enabled,
                                 plan_task_id=plan_task_id, plan_key=plan_key,
                                 trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    run.trigger_rule = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    resume = ResumeWritersOperator(task_id="resume_writers", pause_task_id=pause.task_id,
                                   retries=2)
    before >> pause >> run
    before >> run  # with the pause skipped (pause_writers off), run follows its own upstream
    [pause, run] >> resume.as_teardown()
    return pause, resume
