"""Quiesce the writers during a restore: pause the DAGs that write to the database, wait for
their running tasks, and afterwards resume exactly the DAGs that were paused for it.

A writer a person had paused before is never paused again nor resumed: only the DAGs this
restore paused are recorded (after each pause, so a restore that dies half-way still knows)
and resumed. The REST calls are behind :class:`WriterControl` (``hooks/airflow_api.py``);
this module decides and waits, and is tested without Airflow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from amprenta_backup.core.errors import RestoreError

log = logging.getLogger(__name__)

#: task instance states that still write (a paused DAG starts nothing new, these go on)
ACTIVE_STATES = ("queued", "running", "restarting")
DEFAULT_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class TaskRef:
    """One task instance of a writer that is still at work.

    :param dag_id: its DAG
    :param run_id: its DAG run
    :param task_id: the task
    :param state: queued, running or restarting
    :param map_index: -1 unless mapped
    """

    dag_id: str
    run_id: str
    task_id: str
    state: str = "running"
    map_index: int = -1

    def label(self) -> str:
        mapped = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{mapped} ({self.state}, run {self.run_id})"

    @classmethod
    def from_rest(cls, data: Mapping[str, Any]) -> TaskRef:
        """From one item of Airflow's ``taskInstances`` JSON."""
        return cls(dag_id=str(data["dag_id"]), run_id=str(data["dag_run_id"]),
                   task_id=str(data["task_id"]), state=str(data.get("state")),
                   map_index=int(data.get("map_index", -1)))


class WriterControl(Protocol):
    """What quiescing needs of Airflow: pause states, pausing, and the active tasks."""

    def paused_states(self, dag_ids: Sequence[str]) -> dict[str, bool]: ...

    def set_paused(self, dag_id: str, paused: bool) -> None: ...

    def active_tasks(self, dag_ids: Sequence[str]) -> list[TaskRef]: ...


class QuiesceTimeout(RestoreError):
    """The writers' tasks did not finish in time; the restore did not start."""


@dataclass(frozen=True)
class QuiescePlan:
    """What a restore will do to the writers of its database, for the plan and approval.

    :param enabled: whether the restore pauses them (``pause_writers``)
    :param to_pause: writers not paused now: these are paused, and resumed afterwards
    :param left_paused: writers paused already (by a person): left as they are
    :param running: the writers' active tasks now: the restore waits for them
    :param wait_seconds: how long it waits at most
    """

    enabled: bool
    to_pause: tuple[str, ...] = ()
    left_paused: tuple[str, ...] = ()
    running: tuple[TaskRef, ...] = ()
    wait_seconds: float = 0.0

    def advice(self) -> str:
        """What the writers line says will happen to them."""
        if not self.enabled:
            return "pause them by hand before it writes (pause_writers is off)"
        return "paused during the restore and resumed after it, also if it fails"

    def lines(self) -> list[str]:
        if not self.enabled or not (self.to_pause or self.left_paused):
            return []
        lines = []
        if self.to_pause:
            them = "them" if len(self.to_pause) > 1 else "it"
            lines.append(f"pausing {', '.join(self.to_pause)} before the restore, resuming "
                         f"{them} when it ends")
        if self.left_paused:
            lines.append(f"already paused, left paused: {', '.join(self.left_paused)}")
        if self.running:
            lines.append(f"running now, the restore waits up to {self.wait_seconds:g} s for: "
                         + ", ".join(t.label() for t in self.running))
        elif self.to_pause:
            lines.append("no writer task is running now")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "to_pause": list(self.to_pause),
                "left_paused": list(self.left_paused),
                "running": [t.label() for t in self.running],
                "wait_seconds": self.wait_seconds, "lines": self.lines()}


def plan_quiesce(writers: Iterable[str], paused: Mapping[str, bool],
                 running: Iterable[TaskRef], *, enabled: bool,
                 wait_seconds: float) -> QuiescePlan:
    """Which writers a restore pauses (those not paused now) and which it leaves (paused
    already); ``running`` is narrowed to the writers."""
    writers = sorted(set(writers))
    return QuiescePlan(
        enabled=enabled, wait_seconds=wait_seconds,
        to_pause=tuple(d for d in writers if not paused.get(d, False)),
        left_paused=tuple(d for d in writers if paused.get(d, False)),
        running=tuple(t for t in running if t.dag_id in writers))


@dataclass
class Quiesced:
    """What a restore did to the writers: the DAGs it paused (and must resume), those it left
    paused, and the tasks it waited for.

    :param paused: the DAGs this restore paused, in order
    :param left_paused: writers that were paused already
    :param waited_for: the active tasks it waited for
    :param wait_seconds: how long the wait took
    """

    paused: list[str] = field(default_factory=list)
    left_paused: list[str] = field(default_factory=list)
    waited_for: list[str] = field(default_factory=list)
    wait_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"paused": list(self.paused), "left_paused": list(self.left_paused),
                "waited_for": list(self.waited_for), "wait_seconds": self.wait_seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Quiesced:
        data = data or {}
        return cls(paused=list(data.get("paused") or ()),
                   left_paused=list(data.get("left_paused") or ()),
                   waited_for=list(data.get("waited_for") or ()),
                   wait_seconds=float(data.get("wait_seconds") or 0.0))


class Quiescer:
    """Pause writers, wait for their tasks, resume exactly what was paused.

    :param control: Airflow's side (the REST API hook)
    :param poll_seconds: how often the wait asks for the active tasks
    :param clock: monotonic seconds (for the bound)
    :param sleep: how to wait between polls
    """

    def __init__(self, control: WriterControl, poll_seconds: float = DEFAULT_POLL_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.control = control
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.sleep = sleep

    def quiesce(self, writers: Sequence[str], wait_seconds: float,
                record: Callable[[Quiesced], None]) -> Quiesced:
        """Pause the writers that are not paused now, then wait for their active tasks.

        ``record`` is called before each pause with what was done so far (the caller keeps it
        where a later resume finds it). Any failure, the wait's timeout included, resumes
        what was paused here before it is raised: nothing stays paused by a restore that
        did not start.
        """
        done = Quiesced()
        states = self.control.paused_states(writers)
        unknown = sorted(set(writers) - states.keys())
        if unknown:
            log.warning("not DAGs Airflow knows, so not paused: %s (check BACKUP_WRITERS)",
                        ", ".join(unknown))
        done.left_paused = sorted(d for d, paused in states.items() if paused)
        try:
            for dag_id in sorted(d for d, paused in states.items() if not paused):
                # recorded before the pause: a worker killed in between leaves a DAG to resume
                # that was never paused (harmless), never a paused one nobody will resume
                done.paused.append(dag_id)
                record(done)
                self.control.set_paused(dag_id, True)
                log.info("paused DAG %s (writes to the database being restored)", dag_id)
            self._wait(done, writers, wait_seconds)
        except BaseException:
            self._undo(done, record)
            raise
        record(done)
        return done

    def _undo(self, done: Quiesced, record: Callable[[Quiesced], None]) -> None:
        """Resume what :meth:`quiesce` paused before it failed; record that nothing is left."""
        try:
            resumed = self.resume(done.paused)
        except RestoreError as exc:  # the original failure is the one raised
            log.error("quiescing the writers failed, and %s", exc)
            return
        log.error("quiescing the writers failed; resumed the DAGs paused for it: %s",
                  ", ".join(resumed) or "none")
        record(Quiesced(left_paused=done.left_paused, waited_for=done.waited_for,
                        wait_seconds=done.wait_seconds))

    def _wait(self, done: Quiesced, writers: Sequence[str], wait_seconds: float) -> None:
        started = self.clock()
        seen: dict[str, None] = {}
        while True:
            active = self.control.active_tasks(writers)
            seen.update(dict.fromkeys(t.label() for t in active))
            done.waited_for = list(seen)
            done.wait_seconds = round(self.clock() - started, 3)
            if not active:
                if seen:
                    log.info("the writers' tasks finished after %.1f s: %s",
                             done.wait_seconds, ", ".join(seen))
                return
            if done.wait_seconds >= wait_seconds:
                raise QuiesceTimeout(
                    f"the writers' tasks are still at work after {wait_seconds:g} s: "
                    f"{', '.join(t.label() for t in active)}; the restore did not start and "
                    "the paused DAGs were resumed. Let them finish (or stop them) and run the "
                    "restore again, or raise BACKUP_QUIESCE_WAIT_SECONDS")
            log.info("waiting for %d writer task(s): %s", len(active),
                     ", ".join(t.label() for t in active))
            self.sleep(self.poll_seconds)

    def resume(self, paused: Sequence[str]) -> list[str]:
        """Unpause exactly ``paused`` (what :meth:`quiesce` recorded); every one is tried,
        and a RestoreError names those that could not be resumed."""
        resumed: list[str] = []
        failed: list[str] = []
        for dag_id in paused:
            try:
                self.control.set_paused(dag_id, False)
                resumed.append(dag_id)
                log.info("resumed DAG %s", dag_id)
            except Exception as exc:  # one failure must not keep the others paused
                log.error("could not resume DAG %s: %s", dag_id, exc)
                failed.append(f"{dag_id} ({exc})")
        if failed:
            raise RestoreError(f"could not resume {', '.join(failed)}; unpause "
                               f"{'them' if len(failed) > 1 else 'it'} in the Airflow UI "
                               "(resumed: " + (", ".join(resumed) or "none") + ")")
        return resumed
