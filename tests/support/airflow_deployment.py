"""AirflowDeployment: a real scheduler, dag-processor, triggerer and api-server for e2e tests."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from cryptography.fernet import Fernet

from amprenta_backup.sandbox.cluster import LOCALHOST, free_port
from tests.support import process_group
from tests.support.airflow_env import REPO
from tests.support.airflow_rest import AirflowRestClient, DeploymentError
from tests.support.process_group import GroupMemory

COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor",
               "triggerer": "triggerer"}
ADMIN = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def _inherited_env() -> dict[str, str]:
    """This process's environment without its Airflow and BACKUP_* settings."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "BACKUP_", "_AIRFLOW"))}


__all__ = ["AirflowDeployment", "Component", "DeploymentError"]


@dataclass(frozen=True)
class Component:
    """One more ``airflow`` process beside the four standard ones, e.g. a Celery worker.

    :param name: its log is ``<home>/<name>.log``
    :param args: the ``airflow`` arguments (``("celery", "worker", "--queues", "default")``)
    :param env: variables of this process only (on top of the deployment's)
    :param ready: text its log shows once it serves; the deployment waits for it at start
    """

    name: str
    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    ready: str | None = None


class AirflowDeployment(AirflowRestClient):
    """Airflow 3 components as subprocesses, each in its own process group, sharing one home,
    with the REST helpers of :class:`AirflowRestClient` (``trigger``, ``wait`` ...).

    LocalExecutor, the metadata DB at ``metadata_url``, the repo's ``dags/`` and ``plugins/``,
    the simple auth manager with a generated admin password, and explicit JWT, API and Fernet
    secrets. Every component's output goes to ``<home>/<component>.log``.

    :param home: ``AIRFLOW_HOME``; created if missing
    :param metadata_url: SQLAlchemy URL of the metadata DB; it holds a password, so it is
        passed through the environment only, never on a command line
    :param env: more variables for every component (``AIRFLOW_CONN_*``, ``BACKUP_*`` ...)
    :param components: which ``airflow`` commands to start: names of the standard ones, or
        :class:`Component` for anything else (Celery workers)
    :param parallelism: ``[core] parallelism``: LocalExecutor's worker processes
    :param executor: ``[core] executor`` (``CeleryExecutor`` needs its broker in ``env``)
    :param start_timeout: seconds to wait for a healthy deployment
    """

    def __init__(self, home: Path, metadata_url: str, env: Mapping[str, str] | None = None,
                 components: Sequence[str | Component] = COMPONENTS, parallelism: int = 4,
                 start_timeout: float = 180.0, executor: str = "LocalExecutor") -> None:
        self.port = free_port()
        super().__init__(f"http://{LOCALHOST}:{self.port}")
        self.home = Path(home)
        self.specs = tuple(c if isinstance(c, Component) else Component(c, (c,))
                           for c in components)
        self.components = tuple(c.name for c in self.specs)
        self.start_timeout = start_timeout
        self.timings: dict[str, float] = {}
        self._password = secrets.token_urlsafe(16)
        self._passwords: dict[str, str] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._peak: dict[str, GroupMemory] = {}
        self.env = {
            **_inherited_env(),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # paused: only the DAG a test triggers runs (no scheduled weekly_verify or
            # weekly_cleanup run changes the catalog under a test)
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__API__HOST": LOCALHOST,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            **(env or {}),
        }

    @property
    def admin_password(self) -> str:
        """The generated password of the ``admin`` user (for a browser's login form)."""
        return self._password

    @staticmethod
    def postgres_url(host: str, port: int, user: str, password: str, dbname: str) -> str:
        """A ``postgresql+psycopg://`` SQLAlchemy URL with the user and password quoted."""
        return (f"postgresql+psycopg://{quote(user, safe='')}:{quote(password, safe='')}"
                f"@{host}:{port}/{quote(dbname, safe='')}")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Migrate the metadata DB, start every component and wait until the API answers
        with healthy components and a token."""
        began = time.monotonic()
        atexit.register(self.stop)
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            self._write_password_file()
            self._migrate()
            self.timings["migrate_s"] = time.monotonic() - began
            for spec in self.specs:
                self._spawn(spec)
            self._wait_healthy(began + self.start_timeout)
            self.timings["healthy_s"] = time.monotonic() - began
        except DeploymentError:
            self.stop()
            raise
        except BaseException as exc:
            tails = self.log_tails()
            self.stop()
            if not isinstance(exc, Exception):
                raise
            raise DeploymentError(f"deployment failed to start: {exc}\n{tails}") from exc
        return self

    def stop(self) -> None:
        """SIGTERM the scheduler's process group, then every other component's; SIGKILL what
        is left of each after 15 s.

        The scheduler goes first: SIGTERMed together with the others, the CeleryExecutor's
        scheduler was still running 40 s later (SIGKILLed after the grace), alone it exits
        in 1.4 s and the rest in 3.6 s more.
        """
        atexit.unregister(self.stop)
        if self._procs:
            began = time.monotonic()
            def reap() -> None:
                for proc in self._procs.values():
                    proc.poll()

            first = [p.pid for n, p in self._procs.items() if n == "scheduler"]
            killed = process_group.terminate(first, grace=15.0, reap=reap)
            killed += process_group.terminate(
                [p.pid for p in self._procs.values() if p.pid not in first], grace=15.0,
                reap=reap)
            for proc in self._procs.values():
                proc.wait(timeout=10)
            self.timings["stop_s"] = time.monotonic() - began
            self.timings["stop_killed_groups"] = float(len(killed))
            self._procs = {}
        self.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def password_of(self, user: str) -> str:
        """The generated password of a user of ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS``."""
        return self._password if user == ADMIN else self._passwords[user]

    def _write_password_file(self) -> None:
        """Pre-seed the simple auth manager's password file with a password for every user
        it is given (``name:role,...``), so no password is ever printed."""
        users = self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")
        self._passwords = {name: secrets.token_urlsafe(16) for name in
                           (u.split(":")[0].strip() for u in users) if name != ADMIN}
        path = self.home / PASSWORDS_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({ADMIN: self._password, **self._passwords}, handle)

    def _airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def _migrate(self) -> None:
        log_path = self.home / "db-migrate.log"
        with open(log_path, "wb") as log:
            done = subprocess.run([self._airflow(), "db", "migrate"], env=self.env, cwd=self.home,
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=300)
        if done.returncode != 0:
            raise DeploymentError(f"`airflow db migrate` failed (rc={done.returncode})\n"
                                  f"{self._tail(log_path)}")

    def _spawn(self, spec: Component) -> None:
        with open(self.home / f"{spec.name}.log", "wb") as log:
            self._procs[spec.name] = subprocess.Popen(
                [self._airflow(), *spec.args], env={**self.env, **spec.env}, cwd=self.home,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def kill(self, name: str) -> list[int]:
        """SIGKILL a component and every process below it (task processes have process groups
        of their own), as if its host died; it is not restarted. Returns the pids below it."""
        proc = self._procs.pop(name)
        below = process_group.kill_tree(proc.pid)
        proc.wait(timeout=10)
        return below

    def pid(self, name: str) -> int:
        """The pid (and process group) of a running component."""
        return self._procs[name].pid

    def _wait_healthy(self, deadline: float) -> None:
        wanted = [HEALTH_KEYS[n] for n in self.components if n in HEALTH_KEYS]
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.check_running()
            try:
                health = self.health()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
                continue
            if all((health.get(key) or {}).get("status") == "healthy" for key in wanted):
                for spec in self.specs:
                    if spec.ready is not None:
                        self.wait_for_log(spec.name, spec.ready, deadline - time.monotonic())
                self.login(ADMIN, self._password)
                return
            time.sleep(0.5)
        raise DeploymentError(f"not healthy within {self.start_timeout:.0f} s: {health}\n"
                              f"{self.log_tails()}")

    def check_running(self) -> None:
        """Raise, with the log tails, if a component has exited."""
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise DeploymentError(f"`airflow {name}` exited with rc={proc.returncode}\n"
                                      f"{self.log_tails()}")

    def on_poll(self) -> None:
        self.check_running()
        self._sample_memory()

    def failure_context(self) -> str:
        return self.log_tails()

    # -- observation -------------------------------------------------------------------------

    def memory(self) -> dict[str, GroupMemory]:
        """RSS and PSS per component (its whole process group), plus a ``total``."""
        usage = {name: process_group.memory(proc.pid) for name, proc in self._procs.items()}
        usage["total"] = sum(usage.values(), GroupMemory(0, 0, 0))
        return usage

    def _sample_memory(self) -> None:
        for name, usage in self.memory().items():
            if usage.pss_bytes > self._peak.get(name, GroupMemory(0, 0, 0)).pss_bytes:
                self._peak[name] = usage

    def peak_memory(self) -> dict[str, GroupMemory]:
        """The highest PSS seen per component (and in total) while the ``wait*`` methods
        polled."""
        return dict(self._peak)

    def wait_for_log(self, component: str, needle: str, timeout: float = 60.0) -> None:
        """Wait until ``needle`` appears in ``<home>/<component>.log``."""
        path = self.home / f"{component}.log"
        self._poll(lambda: True if needle in path.read_text(errors="replace") else None,
                   timeout, 0.25, lambda: f"{needle!r} not in {path.name}")

    def approve(self, dag_id: str, run_id: str, task_id: str) -> None:
        """Answer Approve to an approval task (see :meth:`answer`)."""
        self.answer(dag_id, run_id, task_id, ["Approve"])

    def answer(self, dag_id: str, run_id: str, task_id: str, chosen: list[str]) -> None:
        """Answer a human-in-the-loop task through the REST API, once it waits for input.

        The answer is given only once the scheduler has handled the worker's exit after the
        task paused: an answer that comes earlier (within about a second) makes Airflow 3.3.2
        fail the approval task with "state mismatch" (the race of apache/airflow#71502 and
        #71172, here on the ``awaiting_input`` path).
        """
        self.wait_task(dag_id, run_id, task_id, "awaiting_input")
        self.wait_for_log("scheduler", f"TaskInstance Finished: dag_id={dag_id}, "
                                       f"task_id={task_id}, run_id={run_id}")
        self.respond(dag_id, run_id, task_id, chosen)

    def log_files(self) -> list[Path]:
        """Every file the deployment wrote under its home (component and task logs)."""
        return sorted(p for p in self.home.rglob("*") if p.is_file())

    @staticmethod
    def _tail(path: Path, lines: int = 30) -> str:
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_tails(self, lines: int = 30) -> str:
        """The last lines of every component's log, for failure messages."""
        names = ["db-migrate", *self.components]
        return "\n".join(f"--- {name}.log (last {lines} lines) ---\n"
                         f"{self._tail(self.home / f'{name}.log', lines)}" for name in names)
