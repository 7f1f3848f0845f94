"""AirflowRestClient: trigger and follow DAG runs through Airflow 3's public REST API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

FINISHED = ("success", "failed")
T = TypeVar("T")


class DeploymentError(RuntimeError):
    """The deployment did not start, answer or finish a run as expected."""


class AirflowRestClient:
    """The REST calls the e2e tests make, as an admin of the simple auth manager.

    Subclasses hook into every poll (:meth:`on_poll`) and add context to failure messages
    (:meth:`failure_context`).

    :param base_url: the api-server, e.g. ``http://127.0.0.1:8080``
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._client: httpx.Client | None = None

    def login(self, username: str, password: str) -> None:
        """Get a token from ``/auth/token``; later calls send it as a Bearer token."""
        answer = httpx.post(f"{self.base_url}/auth/token", timeout=30,
                            json={"username": username, "password": password})
        if answer.status_code != 201:
            raise DeploymentError(f"/auth/token answered {answer.status_code}: {answer.text}")
        token = answer.json()["access_token"]
        self._client = httpx.Client(base_url=self.base_url, timeout=30,
                                    headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def client(self) -> httpx.Client:
        """An HTTP client for the API server, authenticated as the admin."""
        if self._client is None:
            raise DeploymentError("not logged in: start the deployment (or call login) first")
        return self._client

    def on_poll(self) -> None:
        """Called on every poll of a ``wait*`` method; raise to stop waiting."""

    def failure_context(self) -> str:
        """Text appended to timeout errors (e.g. component log tails)."""
        return ""

    def _poll(self, probe: Callable[[], T | None], timeout: float, interval: float,
              describe: Callable[[], str]) -> T:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.on_poll()
            try:
                found = probe()
            except httpx.TimeoutException:  # a busy api-server (cold start, load 15+): the
                found = None                # answer is not in yet; ask again until the deadline
            if found is not None:
                return found
            time.sleep(interval)
        raise DeploymentError(f"{describe()} after {timeout:.0f} s\n{self.failure_context()}")

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API and return the decoded JSON; raise on any non-2xx answer."""
        answer = self.client.request(method, path, **kwargs)
        if answer.is_error:
            raise DeploymentError(f"{method} {path} answered {answer.status_code}: {answer.text}")
        return answer.json()

    @staticmethod
    def _run_path(dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"

    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` (needs no token)."""
        return dict(httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=10).json())

    def import_errors(self) -> list[dict[str, Any]]:
        """``GET /api/v2/importErrors``: what ``airflow dags list-import-errors`` shows."""
        return list(self.api("GET", "/api/v2/importErrors")["import_errors"])

    def dags(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/api/v2/dags", params={"limit": 1000})["dags"])

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` and the API knows it."""
        def probe() -> dict[str, Any] | None:
            answer = self.client.get(f"/api/v2/dags/{dag_id}")
            return dict(answer.json()) if answer.status_code == 200 else None

        return self._poll(probe, timeout, 0.5, lambda: f"DAG {dag_id!r} not parsed "
                                                        f"(import errors {self.import_errors()})")

    def wait_parsed(self, file_names: set[str], timeout: float = 120.0) -> None:
        """Wait until every named DAG file has either a DAG or an import error in the API."""
        seen: set[str] = set()

        def probe() -> bool | None:
            seen.clear()
            seen.update(Path(d["fileloc"]).name for d in self.dags())
            seen.update(Path(e["filename"]).name for e in self.import_errors())
            return True if file_names <= seen else None

        self._poll(probe, timeout, 0.5, lambda: f"DAG files {sorted(file_names - seen)} "
                                                "not parsed")

    def post_run(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> httpx.Response:
        """POST a manual run (``logical_date: null``) and return the raw answer."""
        return self.client.post(f"/api/v2/dags/{dag_id}/dagRuns",
                                json={"logical_date": None, "conf": dict(conf or {})})

    def unpause(self, dag_id: str) -> None:
        """Unpause one DAG (the deployment creates every DAG paused)."""
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Unpause ``dag_id`` and trigger a manual run with ``conf``; return the new run."""
        self.unpause(dag_id)
        answer = self.post_run(dag_id, conf)
        if answer.status_code != 200:
            raise DeploymentError(f"triggering {dag_id} answered {answer.status_code}: "
                                  f"{answer.text}")
        return dict(answer.json())

    def wait(self, dag_id: str, run_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """Poll the run until it is ``success`` or ``failed``; return it."""
        def probe() -> dict[str, Any] | None:
            run = dict(self.api("GET", self._run_path(dag_id, run_id)))
            return run if run["state"] in FINISHED else None

        return self._poll(probe, timeout, 1.0, lambda: f"run {run_id} of {dag_id} unfinished "
                                                       f"(tasks {self.states(dag_id, run_id)})")

    def run_dag(self, dag_id: str, conf: Mapping[str, Any] | None = None,
                timeout: float = 180.0) -> dict[str, Any]:
        """Trigger, wait, and return the finished run with ``tasks``: ``{ti_key: state}``."""
        self.wait_for_dag(dag_id)
        run_id = self.trigger(dag_id, conf)["dag_run_id"]
        finished = self.wait(dag_id, run_id, timeout)
        finished["tasks"] = self.states(dag_id, run_id)
        return finished

    def wait_task(self, dag_id: str, run_id: str, task_id: str, state: str,
                  timeout: float = 120.0) -> None:
        """Wait until one (unmapped) task instance reaches ``state`` (e.g. ``awaiting_input``)."""
        path = f"{self._run_path(dag_id, run_id)}/taskInstances/{task_id}"
        self._poll(lambda: True if self.api("GET", path)["state"] == state else None, timeout,
                   0.5, lambda: f"{dag_id}.{task_id} of {run_id} not {state} "
                                f"(tasks {self.states(dag_id, run_id)})")

    def wait_idle(self, dag_id: str, timeout: float = 180.0) -> None:
        """Wait until ``dag_id`` has no queued or running run (scheduled ones included)."""
        def active() -> list[str]:
            answer = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                              params={"state": ["queued", "running"], "limit": 100})
            return [run["dag_run_id"] for run in answer["dag_runs"]]

        self._poll(lambda: None if active() else True, timeout, 1.0,
                   lambda: f"{dag_id} still has active runs {active()}")

    def respond(self, dag_id: str, run_id: str, task_id: str, chosen: Sequence[str],
                map_index: int = -1) -> dict[str, Any]:
        """Answer a human-in-the-loop task (e.g. ``["Approve"]``) as the admin."""
        return dict(self.api(
            "PATCH", f"{self._run_path(dag_id, run_id)}/taskInstances/{task_id}/{map_index}"
                     "/hitlDetails", json={"chosen_options": list(chosen)}))

    @staticmethod
    def ti_key(ti: Mapping[str, Any]) -> str:
        """``task_id`` or ``task_id[map_index]`` for mapped task instances."""
        index = ti.get("map_index", -1)
        return str(ti["task_id"]) if index in (-1, None) else f"{ti['task_id']}[{index}]"

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances as the API returns them."""
        answer = self.api("GET", f"{self._run_path(dag_id, run_id)}/taskInstances")
        return list(answer["task_instances"])

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """``{ti_key: state}`` of the run's task instances."""
        return {self.ti_key(t): t["state"] for t in self.task_instances(dag_id, run_id)}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1,
                 map_index: int = -1) -> str:
        """The whole log of one task try, one line per event (structured fields as JSON)."""
        answer = self.api(
            "GET", f"{self._run_path(dag_id, run_id)}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"})
        lines = []
        for entry in answer["content"]:
            if isinstance(entry, dict):
                rest = {k: v for k, v in entry.items() if k != "event"}
                lines.append(f"{entry.get('event', '')} {json.dumps(rest, default=str)}")
            else:
                lines.append(str(entry))
        return "\n".join(lines)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value",
             map_index: int = -1) -> Any:
        """The JSON value a task instance pushed under ``key``."""
        answer = self.api(
            "GET", f"{self._run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index})
        return answer["value"]
