"""RedisServer: Debian's redis-server as an unprivileged process on a free port (a broker)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from amprenta_backup.core.pitr.localserver import LOCALHOST, as_user, free_port, give_to
from amprenta_backup.sandbox.cluster import server_os_user
from tests.support import process_group

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # runuser and redis-server


class RedisServer:
    """``redis-server`` on 127.0.0.1 with no persistence, as the sandbox's OS user when root.

    :param start_timeout: seconds to wait until it answers PING
    """

    def __init__(self, start_timeout: float = 30.0) -> None:
        self.port = free_port()
        self.start_timeout = start_timeout
        self._dir = Path(tempfile.mkdtemp(prefix="amprenta-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The Celery broker URL (database 0)."""
        return f"redis://{LOCALHOST}:{self.port}/0"

    @staticmethod
    def binary() -> str | None:
        """Path of ``redis-server``, if installed (Debian: ``apt-get install redis-server``)."""
        return shutil.which("redis-server")

    def start(self) -> Self:
        binary = self.binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        user = server_os_user()
        give_to(self._dir, user)
        argv = as_user([binary, "--bind", LOCALHOST, "--port", str(self.port), "--save", "",
                        "--appendonly", "no", "--dir", str(self._dir), "--protected-mode",
                        "yes"], user)
        with open(self._dir / "redis.log", "wb") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=self._dir,
                                          start_new_session=True, env={"PATH": SYSTEM_PATH})
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                if redis.Redis.from_url(self.url, socket_timeout=2).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.1)
        log_text = (self._dir / "redis.log").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}:\n{log_text}")

    def stop(self) -> None:
        if self._proc is not None:
            process_group.terminate([self._proc.pid], grace=10.0, reap=self._proc.poll)
            self._proc.wait(timeout=10)
            self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
