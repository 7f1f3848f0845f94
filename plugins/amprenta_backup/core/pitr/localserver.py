"""A PostgreSQL server on this host, run from its data directory as its own OS user.

PostgreSQL refuses to run as root. When this process is root, every server-side command
(``pg_ctl``, ``initdb`` ...) runs through ``runuser`` as an unprivileged OS user who owns the
data directory (mode 700). Used by point-in-time restores and drills, and by the sandbox.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from amprenta_backup.core.childenv import minimal_env
from amprenta_backup.core.errors import ConfigError, RestoreError
from amprenta_backup.core.pgtools import same_major, tool

LOCALHOST = "127.0.0.1"


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that was free a moment ago (bind to port 0 and ask)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def server_user(name: str) -> str | None:
    """The OS user to run a server as: ``name`` when we are root (it must exist), else None
    (the server runs as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"OS user {name!r} does not exist; PostgreSQL cannot run as root, so "
                          "create that user or set BACKUP_PITR_OS_USER to one that exists") \
            from None
    return name


def as_user(argv: Sequence[str | os.PathLike[str]], os_user: str | None) -> list[str]:
    """``argv`` prefixed with ``runuser -u USER --`` when a user is given."""
    args = [os.fspath(a) for a in argv]
    return args if os_user is None else ["runuser", "-u", os_user, "--", *args]


def run_as(argv: Sequence[str | os.PathLike[str]], os_user: str | None, *,
           env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
           timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``os_user`` and return the result (the caller checks the code)."""
    return subprocess.run(as_user(argv, os_user), env=dict(env) if env is not None else None,
                          cwd=cwd or "/", capture_output=True, text=True, timeout=timeout)


def give_to(path: Path, os_user: str | None) -> None:
    """Recursively chown ``path`` to ``os_user`` (nothing to do when None)."""
    if os_user is None:
        return
    entry = pwd.getpwnam(os_user)
    os.lchown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small environment for a server: no Airflow variables or credentials leak into it
    (``archive_command`` and ``restore_command`` inherit the server's environment)."""
    return minimal_env(extra)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


class LocalServer:
    """``pg_ctl`` for one data directory, as its OS user.

    :param data_dir: the data directory (owned by ``os_user``, mode 700)
    :param os_user: OS user to run as when we are root; None to run as ourselves
    :param log_file: the server's startup log (``pg_ctl -l``)
    :param major: the data directory's PostgreSQL major (its own ``pg_ctl`` is used); None:
        the first ``pg_ctl`` found
    """

    def __init__(self, data_dir: Path, os_user: str | None, log_file: Path,
                 major: int | None = None) -> None:
        self.data_dir = data_dir
        self.os_user = os_user
        self.log_file = log_file
        self.major = major

    def pg_ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        pg_ctl = tool("pg_ctl") if self.major is None else same_major(
            "pg_ctl", self.major, f"the PostgreSQL {self.major} data directory {self.data_dir}"
        ).path("pg_ctl")
        return run_as([pg_ctl, "-D", self.data_dir, *args], self.os_user,
                      env=server_env(), timeout=timeout + 30)

    def start(self, wait_seconds: float = 600) -> None:
        """Start the server; a RestoreError with the log's tail if it does not come up."""
        if not self.log_file.exists():
            self.log_file.touch(mode=0o600)
        give_to(self.log_file, self.os_user)
        done = self.pg_ctl("-l", str(self.log_file), "-w", "-t", str(int(wait_seconds)),
                           "start", timeout=wait_seconds)
        if done.returncode != 0:
            raise RestoreError(f"the server in {self.data_dir} did not start: "
                               f"{done.stderr.strip() or done.stdout.strip()}\n--- server log "
                               f"({self.log_file}) ---\n{log_tail(self.log_file)}")

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists() and \
            self.pg_ctl("status", timeout=30).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """Stop the server if it runs (immediate shutdown if a fast one hangs)."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        done = self.pg_ctl("-m", mode, "-w", "-t", "60", "stop", timeout=60)
        if done.returncode != 0 and (self.data_dir / "postmaster.pid").exists():
            self.pg_ctl("-m", "immediate", "-w", "-t", "60", "stop", timeout=60)
        deadline = time.monotonic() + 10
        while (self.data_dir / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
