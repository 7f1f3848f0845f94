"""Quiesce the writers: which DAGs are paused, how long the restore waits, what is resumed.

The core decides against :class:`WriterControl`; here that is :class:`Airflow`, an in-memory
stand-in (pause states and active tasks), because the decisions and the failure paths
(a resume refused half-way, a wait that never ends) are what is tested. The real REST calls
and a real deployment are in tests/e2e/test_restore_dag.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from amprenta_backup.core.errors import RestoreError
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.quiesce import (
    Quiesced,
    Quiescer,
    QuiesceTimeout,
    TaskRef,
    plan_quiesce,
)
from amprenta_backup.core.restore.writers import DagInfo, PipelinePlan, find_pipelines

LOAD = TaskRef("load_orders", "manual__1", "load")


class Airflow:
    """Pause states and active tasks; each ``active_tasks`` call pops the next answer."""

    def __init__(self, paused: dict[str, bool], active: Sequence[list[TaskRef]] = (),
                 refuse: Sequence[str] = ()) -> None:
        self.paused = dict(paused)
        self.answers = list(active)
        self.refuse = set(refuse)
        self.calls: list[tuple[str, bool]] = []

    def paused_states(self, dag_ids: Sequence[str]) -> dict[str, bool]:
        return {d: self.paused[d] for d in dag_ids if d in self.paused}

    def set_paused(self, dag_id: str, paused: bool) -> None:
        if dag_id in self.refuse and not paused:
            raise RuntimeError("403 Forbidden")
        self.calls.append((dag_id, paused))
        self.paused[dag_id] = paused

    def active_tasks(self, dag_ids: Sequence[str]) -> list[TaskRef]:
        """The next answer; the last one again and again."""
        if len(self.answers) > 1:
            return self.answers.pop(0)
        return list(self.answers[0]) if self.answers else []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _quiescer(airflow: Airflow, clock: Clock) -> Quiescer:
    return Quiescer(airflow, poll_seconds=2.0, clock=clock, sleep=clock.sleep)


def test_the_plan_pauses_the_writers_not_paused_and_names_their_running_tasks() -> None:
    plan = plan_quiesce(["load_orders", "load_customers", "by_hand"], {"by_hand": True},
                        [LOAD, TaskRef("unrelated", "r", "t")], enabled=True, wait_seconds=600)
    assert plan.to_pause == ("load_customers", "load_orders")
    assert plan.left_paused == ("by_hand",)
    assert plan.running == (LOAD,)
    assert plan.lines() == [
        "pausing load_customers, load_orders before the restore, resuming them when it ends",
        "already paused, left paused: by_hand",
        "running now, the restore waits up to 600 s for: "
        "load_orders.load (running, run manual__1)"]
    off = plan_quiesce(["load_orders"], {}, [LOAD], enabled=False, wait_seconds=600)
    assert off.lines() == [] and "pause_writers is off" in off.advice()


def test_the_approval_lines_say_the_writers_are_paused_for_the_restore() -> None:
    conn = PgConnInfo(host="db", port=5432, dbname="orders")
    pipelines = find_pipelines(("pg_main",), conn, [DagInfo("load", tags=("writes:pg_main",))])
    quiesce = plan_quiesce(pipelines.writers, {}, [], enabled=True, wait_seconds=60)

    class Plan:
        def text(self) -> str:
            return "restore plan"

        def to_dict(self) -> dict[str, str]:
            return {"backup_id": "b1"}

    joined = PipelinePlan(Plan(), pipelines, quiesce).to_dict()
    assert joined["pipelines"]["lines"] == [
        "1 DAG writes to database 'orders': load (tag writes:pg_main); paused during the "
        "restore and resumed after it, also if it fails",
        "pausing load before the restore, resuming it when it ends",
        "no writer task is running now"]
    assert joined["quiesce"]["to_pause"] == ["load"] and joined["backup_id"] == "b1"


def test_quiesce_pauses_only_unpaused_writers_records_each_and_waits_for_their_tasks() -> None:
    airflow = Airflow({"load_orders": False, "load_customers": False, "by_hand": True},
                      active=[[LOAD], [LOAD], []])
    clock = Clock()
    recorded: list[dict[str, object]] = []
    done = _quiescer(airflow, clock).quiesce(
        ["load_orders", "load_customers", "by_hand", "gone"], 600,
        lambda so_far: recorded.append(so_far.to_dict()))

    assert airflow.calls == [("load_customers", True), ("load_orders", True)]
    assert recorded[0]["paused"] == ["load_customers"]  # kept after the first pause already
    assert done.paused == ["load_customers", "load_orders"]
    assert done.left_paused == ["by_hand"]
    assert done.waited_for == [LOAD.label()] and done.wait_seconds == 4.0
    assert Quiesced.from_dict(recorded[-1]) == done

    resumed = _quiescer(airflow, clock).resume(done.paused)
    assert resumed == ["load_customers", "load_orders"]
    assert airflow.paused == {"load_orders": False, "load_customers": False, "by_hand": True}


def test_a_wait_that_runs_out_resumes_what_it_paused_and_names_the_task() -> None:
    airflow = Airflow({"load_orders": False}, active=[[LOAD]])
    recorded: list[Quiesced] = []
    with pytest.raises(QuiesceTimeout, match=r"still at work after 10 s: load_orders\.load "
                                             r"\(running, run manual__1\); the restore did "
                                             "not start"):
        _quiescer(airflow, Clock()).quiesce(["load_orders"], 10, recorded.append)
    assert airflow.paused == {"load_orders": False}
    assert recorded[-1].paused == []  # nothing left for the teardown to resume


def test_resume_tries_every_dag_and_names_the_one_it_could_not_resume() -> None:
    airflow = Airflow({"a": True, "b": True, "c": True}, refuse=["b"])
    with pytest.raises(RestoreError, match=r"could not resume b \(403 Forbidden\); unpause it "
                                           r"in the Airflow UI \(resumed: a, c\)"):
        _quiescer(airflow, Clock()).resume(["a", "b", "c"])
    assert airflow.paused == {"a": False, "b": True, "c": False}


def test_task_refs_from_the_rest_json_and_an_empty_record() -> None:
    ref = TaskRef.from_rest({"dag_id": "d", "dag_run_id": "r", "task_id": "t",
                             "state": "queued", "map_index": 3})
    assert ref.label() == "d.t[3] (queued, run r)"
    assert Quiesced.from_dict(None) == Quiesced()


def test_each_writer_is_recorded_before_it_is_paused() -> None:
    """A worker killed between the pause and the record would leave a paused DAG that the
    teardown does not know of; recorded first, the worst case is resuming one never paused."""
    airflow, clock = Airflow({"a": False, "b": False}), Clock()
    seen: list[tuple[list[str], dict[str, bool]]] = []
    _quiescer(airflow, clock).quiesce(
        ["a", "b"], 60, lambda done: seen.append((list(done.paused), dict(airflow.paused))))
    # at each record the DAG just recorded is not paused yet
    assert seen[:2] == [(["a"], {"a": False, "b": False}), (["a", "b"], {"a": True, "b": False})]
    assert airflow.paused == {"a": True, "b": True}
