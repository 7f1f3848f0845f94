"""A throwaway, empty PostgreSQL cluster on this host for the DR drill: a new data directory,
``initdb`` of a chosen major, its own port and a random superuser password; removed whole.

The password is kept in the folder (mode 600), never on a command line, in a log or XCom.
Only a folder named ``amprenta-dr-drill-*`` is ever removed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amprenta_backup.core.errors import ConfigError, RestoreError
from amprenta_backup.core.pgtools import PgConnInfo, default_install, install_hint, same_major
from amprenta_backup.core.pitr.localserver import (
    LOCALHOST,
    LocalServer,
    free_port,
    give_to,
    run_as,
    server_env,
)

SCRATCH_PREFIX = "amprenta-dr-drill-"
SUPERUSER = "postgres"
SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")


def server_bin_dir(major: int | None = None) -> Path:
    """The server binaries (initdb, pg_ctl, postgres) of ``major`` (default: the first
    installation found that has them), from the engine's discovery (core/pgtools.py:
    ``BACKUP_PG_BINDIRS``, ``pg_config``, ``/usr/lib/postgresql/N/bin``, the bootstrap cache)."""
    if major is None:
        found = default_install("initdb")
        if found is None:
            raise ConfigError("no PostgreSQL server binaries (initdb, pg_ctl, postgres) on this "
                              f"worker; {install_hint('initdb')}")
    else:
        found = same_major("initdb", major, "the DR drill's scratch cluster")
    missing = [name for name in SERVER_TOOLS if not found.has(name)]
    if missing:
        raise ConfigError(f"{found.bindir} lacks {', '.join(missing)}; "
                          f"{install_hint('postgres', found.major)}")
    return found.bindir


class _Server(LocalServer):
    """``pg_ctl`` of the scratch cluster's own major."""

    def __init__(self, data_dir: Path, os_user: str | None, log_file: Path,
                 bin_folder: Path) -> None:
        super().__init__(data_dir, os_user, log_file)
        self.bin_folder = bin_folder

    def pg_ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_as([self.bin_folder / "pg_ctl", "-D", self.data_dir, *args], self.os_user,
                      env=server_env(), timeout=timeout + 30)


@dataclass(frozen=True)
class ScratchCluster:
    """A scratch cluster's folder, port and binaries on this host.

    :param folder: ``amprenta-dr-drill-*``: data/, the log, the password file
    :param port: its TCP port on 127.0.0.1
    :param bin_folder: the server binaries it was made with
    :param os_user: the OS user it runs as (None: ourselves)
    """

    folder: Path
    port: int
    bin_folder: Path
    os_user: str | None

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def server(self) -> _Server:
        return _Server(self.data_dir, self.os_user, self.folder / "server.log", self.bin_folder)

    @classmethod
    def create(cls, parent: str | None, bin_folder: Path, os_user: str | None) -> ScratchCluster:
        """initdb an empty cluster and start it; removed again if that fails."""
        folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=parent or "/tmp"))
        folder.chmod(0o711)  # the server's OS user must reach data/ inside
        scratch = cls(folder, free_port(), bin_folder, os_user)
        try:
            scratch._initdb()
            scratch.server.start()
        except BaseException:
            scratch.remove()
            raise
        return scratch

    def conninfo(self, database: str = "postgres") -> PgConnInfo:
        password = (self.folder / "password").read_text().strip()
        return PgConnInfo(host=LOCALHOST, port=self.port, user=SUPERUSER, dbname=database,
                          password=password)

    def remove(self) -> None:
        """Stop the server if it runs and delete the folder."""
        if not self.folder.name.startswith(SCRATCH_PREFIX):
            raise ConfigError(f"{self.folder} is not a DR drill scratch folder; not removed")
        if (self.data_dir / "postmaster.pid").exists():
            self.server.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def _initdb(self) -> None:
        secret = self.folder / "password"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
        self.data_dir.mkdir(mode=0o700)
        give_to(self.data_dir, self.os_user)
        pwfile = self.folder / "pwfile"
        shutil.copyfile(secret, pwfile)
        give_to(pwfile, self.os_user)
        done = run_as([self.bin_folder / "initdb", "-D", self.data_dir, "-U", SUPERUSER,
                       "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
                       f"--pwfile={pwfile}", "--no-sync", "--no-instructions"],
                      self.os_user, env=server_env(), cwd=self.folder, timeout=300)
        pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise RestoreError(f"initdb of the DR drill's scratch cluster in {self.data_dir} "
                               f"failed: {done.stderr.strip() or done.stdout.strip()}")
        with (self.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '{LOCALHOST}'\n"
                       f"unix_socket_directories = '{self.data_dir}'\nfsync = off\n")
