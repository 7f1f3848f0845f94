"""Local S3-compatible endpoints on 127.0.0.1: what every one shares, and moto's server in a
subprocess (SeaweedFS, a real S3 server, is ``sandbox.seaweed.SeaweedServer``)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
from botocore.config import Config

from amprenta_backup.core.pitr.localserver import free_port
from amprenta_backup.sandbox.cluster import SandboxError

log = logging.getLogger(__name__)

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


class LocalS3Server:
    """What a local S3 endpoint shares: address, dummy credentials, a boto3 client, buckets,
    a start that retries on another free port, and a server process with its log file.

    :param port: TCP port on 127.0.0.1; a free one if None.
    :param start_timeout: seconds to wait for the HTTP endpoint to answer.
    """

    host = "127.0.0.1"
    access_key = ACCESS_KEY
    secret_key = SECRET_KEY
    region = REGION
    name = "S3 server"

    def __init__(self, port: int | None = None, start_timeout: float = 30.0) -> None:
        self.port = port or 0
        self._fixed_port = port is not None
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        """The server process (benchmarks read its CPU-seconds); 0 before :meth:`start`."""
        return self._proc.pid if self._proc is not None else 0

    def env(self) -> dict[str, str]:
        """AWS_* variables for tools that read credentials from the environment."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_ENDPOINT_URL_S3": self.endpoint_url,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def start(self) -> Self:
        """Start the server and wait until it answers HTTP."""
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            if not self._fixed_port:
                self.port = self._free_port()
            try:
                self._launch()
                break
            except SandboxError:
                if attempt + 1 == attempts:
                    raise
                log.warning("%s failed to start on port %s; retrying", self.name, self.port)
        log.info("%s up at %s", self.name, self.endpoint_url)
        return self

    def _free_port(self) -> int:
        return free_port(self.host)

    def _launch(self) -> None:
        raise NotImplementedError

    def _popen(self, argv: list[str], env: dict[str, str], new_group: bool = False) -> None:
        """Start ``argv`` with its output in a temp log file (kept until ``stop``)."""
        fd, name = tempfile.mkstemp(prefix=f"amprenta-{self.name.split()[0].lower()}-",
                                    suffix=".log")
        self._log_path = Path(name)
        with os.fdopen(fd, "wb") as log_file:
            self._proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env,
                                          start_new_session=new_group)

    def _wait_ready(self, path: str = "/") -> None:
        """Wait until ``path`` gives any HTTP answer; a clear error (with the log's tail) if the
        process exits or ``start_timeout`` passes first."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                self._fail(f"{self.name} exited during start")
            try:
                with urllib.request.urlopen(self.endpoint_url + path, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is serving
            except OSError:
                time.sleep(0.1)
        self._fail(f"{self.name} did not answer at {self.endpoint_url} within "
                   f"{self.start_timeout:.0f} s")

    def _fail(self, what: str) -> None:
        tail = ""
        if self._log_path is not None and self._log_path.exists():
            tail = "\n".join(self._log_path.read_text(errors="replace").splitlines()[-20:])
        self.stop()
        raise SandboxError(f"{what} (port {self.port}); {self._install_hint()}\n{tail}")

    def _install_hint(self) -> str:
        return f"is it installed in {sys.executable}'s environment?"

    def _remove_log(self) -> None:
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def stop(self) -> None:
        raise NotImplementedError

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this endpoint with dummy credentials (path-style addressing).

        :param config: extra ``botocore.config.Config`` keyword arguments (e.g. ``retries``).
        """
        options: dict[str, Any] = {"s3": {"addressing_style": "path"}, "connect_timeout": 5}
        options.update(config)
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, config=Config(**options))

    def create_bucket(self, name: str) -> str:
        """Create a bucket (names need 3+ characters) and return its name."""
        self.client().create_bucket(Bucket=name)
        return name

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class MotoServer(LocalS3Server):
    """moto's S3 server as a separate process (its own memory and CPU), on a free port.

    :param port: TCP port on 127.0.0.1; a free one if None.
    :param threaded: run ``ThreadedMotoServer`` in this process instead of a subprocess.
    :param start_timeout: seconds to wait for the HTTP endpoint to answer.
    """

    name = "moto S3 server"

    def __init__(self, port: int | None = None, threaded: bool = False,
                 start_timeout: float = 30.0) -> None:
        super().__init__(port, start_timeout)
        self.threaded = threaded
        self._thread_server: Any = None

    @property
    def running(self) -> bool:
        return self._thread_server is not None or super().running

    def _launch(self) -> None:
        if self.threaded:
            from moto.server import ThreadedMotoServer

            self._thread_server = ThreadedMotoServer(ip_address=self.host, port=self.port)
            self._thread_server.start()
        else:
            env = {**os.environ, "MOTO_PORT": str(self.port)}
            self._popen([sys.executable, "-m", "moto.server", "-H", self.host,
                         "-p", str(self.port)], env)
        self._wait_ready("/moto-api/")

    def _install_hint(self) -> str:
        return f"is moto[server] installed in {sys.executable}?"

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        req = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def kill(self) -> None:
        """SIGKILL the server at once, to simulate the endpoint vanishing mid-upload."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        elif self._thread_server is not None:
            self._thread_server.stop()
            self._thread_server = None

    def pause(self) -> None:
        """SIGSTOP the server: the endpoint stops answering (connections hang) until resumed."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the server (SIGKILL after 5 s) and remove its log."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=10)
            self._proc = None
        if self._thread_server is not None:
            self._thread_server.stop()
            self._thread_server = None
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
