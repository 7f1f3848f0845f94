"""The Docker path of the sandbox: a ``postgres:<major>`` container (15 by default) through
testcontainers."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, Self

from amprenta_backup.sandbox.cluster import SUPERUSER, ClusterBase, ThrowawayCluster

log = logging.getLogger(__name__)


class ContainerCluster(ClusterBase):
    """A ``postgres:<major>`` container through testcontainers, with the client-side interface only.

    :param image: Docker image.
    :param settings: server settings, passed as ``-c key=value``.
    :param password: superuser password; random if None.
    """

    os_user = None
    socket_dir = None
    data_dir = None

    def __init__(self, image: str = "postgres:15", settings: dict[str, str] | None = None,
                 password: str | None = None) -> None:
        self.image = image
        self.settings = dict(settings or {})
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.bin_dir = None
        self._container: Any = None

    def start(self) -> Self:
        """Start the container and wait until PostgreSQL answers."""
        if self._container is not None:
            return self
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # testcontainers < 4.15
            from testcontainers.postgres import PostgresContainer
        container = PostgresContainer(self.image, username=SUPERUSER, password=self.password,
                                      dbname="postgres", driver=None)
        if self.settings:
            flags = [arg for k, v in self.settings.items() for arg in ("-c", f"{k}={v}")]
            container.with_command(["postgres", *flags])
        try:
            container.start()
            self.host = container.get_container_host_ip()
            self.port = int(container.get_exposed_port(5432))
        except BaseException:
            container.stop()
            raise
        self._container = container
        return self

    def run_as_owner(self, argv: Sequence[str | os.PathLike[str]], *,
                     env: Mapping[str, str] | None = None, check: bool = True,
                     timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError(
            "run_as_owner needs a local data directory; the testcontainers backend has none. "
            "Unset AMPRENTA_USE_TESTCONTAINERS to use ThrowawayCluster for server-side work "
            "(PITR, pg_ctl, restored data directories).")

    def stop(self) -> None:
        """Stop and remove the container."""
        if self._container is not None:
            self._container.stop()
            self._container = None


def docker_available() -> bool:
    """Whether a Docker engine answers (``docker info`` or a usable /var/run/docker.sock)."""
    if shutil.which("docker"):
        try:
            done = subprocess.run(["docker", "info"], capture_output=True, timeout=15)
            if done.returncode == 0:
                return True
        except (OSError, subprocess.TimeoutExpired):
            pass
    sock_path = "/var/run/docker.sock"
    if not os.path.exists(sock_path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(sock_path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b" 200 " in sock.recv(1024)
        except OSError:
            return False


def start_cluster(**kw: Any) -> ClusterBase:
    """Start a sandbox server: testcontainers if ``AMPRENTA_USE_TESTCONTAINERS=1`` and Docker
    answers, else ThrowawayCluster. Takes ThrowawayCluster's keyword arguments."""
    if os.environ.get("AMPRENTA_USE_TESTCONTAINERS") == "1":
        if docker_available():
            ignored = sorted(set(kw) - {"settings", "password", "major"})
            if ignored:
                log.warning("testcontainers backend ignores %s", ", ".join(ignored))
            image = f"postgres:{kw['major']}" if kw.get("major") else "postgres:15"
            return ContainerCluster(image=image, settings=kw.get("settings"),
                                    password=kw.get("password")).start()
        log.warning("AMPRENTA_USE_TESTCONTAINERS=1 but no Docker engine answers; "
                    "using a local ThrowawayCluster")
    return ThrowawayCluster(**kw).start()
