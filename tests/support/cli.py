"""``amprenta-backup`` run as a real process, with settings in its environment only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from amprenta_backup.core.pgtools import PgConnInfo

CLI = (sys.executable, "-m", "amprenta_backup.cli")


def conn_uri(conn: PgConnInfo, dbname: str | None = None) -> str:
    """An ``AIRFLOW_CONN_*`` URI for ``conn`` with the password percent-encoded."""
    return (f"postgresql://{conn.user}:{quote(conn.password or '', safe='')}@{conn.host}:"
            f"{conn.port}/{dbname or conn.dbname}")


@dataclass
class CliRunner:
    """Runs the CLI with ``env`` (plus PATH) and nothing else from the test's environment.

    :param env: AIRFLOW_CONN_* and BACKUP_* variables
    """

    env: dict[str, str] = field(default_factory=dict)

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "AWS_EC2_METADATA_DISABLED": "true",
                **self.env, **(extra or {})}

    def __call__(self, *args: str, timeout: float = 180,
                 preexec: Callable[[], None] | None = None,
                 extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=self.environment(extra), capture_output=True,
                              text=True, timeout=timeout, preexec_fn=preexec)

    def start(self, *args: str, extra: Mapping[str, str] | None = None
              ) -> subprocess.Popen[str]:
        """The CLI in its own process group, still running (to be killed by the test)."""
        return subprocess.Popen([*CLI, *args], env=self.environment(extra), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)


def sigkill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the CLI process only, as the OOM killer would; its pg_dump child is left to
    die of a broken pipe, and anything else in the group is killed after 30 s."""
    proc.kill()
    proc.communicate(timeout=30)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # a child that outlived it is a leak: end it
    except ProcessLookupError:
        pass
