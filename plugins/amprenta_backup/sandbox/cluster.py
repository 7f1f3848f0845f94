"""Throwaway PostgreSQL clusters (initdb/pg_ctl, or testcontainers) for demos and tests.

The system's PostgreSQL (Debian's 15 here) by default; any other installed major with
``major=`` (scripts/bootstrap.sh installs 14, 16, 17 and 18 for the tests).
"""

from __future__ import annotations

import atexit
import logging
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import sql

from amprenta_backup.core.childenv import minimal_env
from amprenta_backup.core.pgtools import ToolMismatch, install_hint, same_major
from amprenta_backup.core.pitr.localserver import LOCALHOST, as_user, free_port, give_to

log = logging.getLogger(__name__)

FALLBACK_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
SERVICE_USER = "amprenta-pg"
SUPERUSER = "postgres"
INSTALL_HINT = (
    "Install the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install -y "
    "postgresql-15`, or any major 14-18) and put their bin directory (`pg_config --bindir`) "
    "first on PATH, or set AMPRENTA_PG_BINDIR to it."
)
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


class SandboxError(RuntimeError):
    """A throwaway server could not be set up, started or stopped."""


def find_bin_dir(major: int | None = None) -> Path:
    """Return the PostgreSQL bin directory holding initdb, pg_ctl and postgres.

    :param major: that major's folder (from the engine's discovery: ``pg_config``,
        ``/usr/lib/postgresql/N/bin``, ``BACKUP_PG_BINDIRS``, the bootstrap cache); None: the
        first of ``$AMPRENTA_PG_BINDIR``, ``pg_config --bindir``, ``/usr/lib/postgresql/15/bin``.
    """
    if major is not None:
        try:
            found = same_major("initdb", major, "a sandbox cluster")
        except ToolMismatch as exc:
            raise SandboxError(f"{exc} (scripts/bootstrap.sh installs 14, 16, 17 and 18)"
                               ) from None
        if all(found.has(name) for name in SERVER_BINARIES):
            return found.bindir
        raise SandboxError(f"{found.bindir} lacks {', '.join(SERVER_BINARIES)}; "
                           f"{install_hint('postgres', major)}")
    candidates: list[Path] = []
    if os.environ.get("AMPRENTA_PG_BINDIR"):
        candidates.append(Path(os.environ["AMPRENTA_PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            candidates.append(Path(done.stdout.strip()))
    candidates.append(FALLBACK_BIN_DIR)
    for bin_dir in candidates:
        if all((bin_dir / tool).is_file() for tool in SERVER_BINARIES):
            return bin_dir
    tried = ", ".join(str(c) for c in candidates)
    raise SandboxError(f"PostgreSQL server binaries not found (looked in {tried}). {INSTALL_HINT}")


def server_os_user() -> str | None:
    """Return the unprivileged OS user to run the server as when we are root, else None.

    Uses ``postgres`` if it exists, else creates the system user ``amprenta-pg``.
    """
    if os.geteuid() != 0:
        return None
    for name in (SUPERUSER, SERVICE_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    argv = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
            SERVICE_USER]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0 and "already exists" not in done.stderr:
        raise SandboxError(f"could not create OS user {SERVICE_USER}: {done.stderr.strip()}")
    return SERVICE_USER


def _conf_value(value: str) -> str:
    """Quote a postgresql.conf value unless it is quoted already."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value
    return "'" + value.replace("'", "''") + "'"


def _utf8_locale() -> str:
    """Return ``C.UTF-8`` if the OS has it, else ``C``."""
    try:
        done = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "C"
    names = {line.strip().lower().replace("-", "") for line in done.stdout.splitlines()}
    return "C.UTF-8" if "c.utf8" in names else "C"


class ClusterBase:
    """Client-side interface shared by every sandbox server: connection details and SQL helpers.

    Subclasses set ``host``, ``port``, ``user`` and ``password``.
    """

    host: str = LOCALHOST
    port: int = 0
    user: str = SUPERUSER
    password: str = ""

    def conninfo(self, dbname: str = "postgres") -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (TCP, password authentication)."""
        return {"host": self.host, "port": self.port, "user": self.user,
                "password": self.password, "dbname": dbname}

    def env(self, dbname: str = "postgres") -> dict[str, str]:
        """Only the ``PG*`` variables libpq tools need; merge into ``os.environ`` yourself."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user,
                "PGPASSWORD": self.password, "PGDATABASE": dbname}

    def connect(self, dbname: str = "postgres", autocommit: bool = True) -> psycopg.Connection:
        """Open a new connection to ``dbname``."""
        return psycopg.connect(**self.conninfo(dbname), autocommit=autocommit)

    def execute(self, query: str | sql.Composable, dbname: str = "postgres",
                params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        """Run one statement (or, without params, a ``;``-separated script) in autocommit."""
        with self.connect(dbname) as conn:
            conn.execute(query, params)  # type: ignore[arg-type]

    def query(self, query: str | sql.Composable, dbname: str = "postgres",
              params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return all its rows."""
        with self.connect(dbname) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def server_major(self) -> int:
        """The server's PostgreSQL major (``server_version_num`` // 10000)."""
        return int(str(self.query("SHOW server_version_num")[0][0])) // 10000

    def database_exists(self, name: str) -> bool:
        """Whether a database called ``name`` exists."""
        return bool(self.query("SELECT 1 FROM pg_database WHERE datname = %s", params=[name]))

    def create_database(self, name: str, template: str | None = None) -> None:
        """``CREATE DATABASE name [TEMPLATE template]`` with quoted identifiers."""
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        self.execute(stmt)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, disconnecting its sessions."""
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))

    def run_as_owner(self, argv: Sequence[str | os.PathLike[str]], *,
                     env: Mapping[str, str] | None = None, check: bool = True,
                     timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run a server-side binary as the OS user that owns the data directory."""
        raise NotImplementedError(f"{type(self).__name__} has no server-side access")

    def start(self) -> Self:  # pragma: no cover - overridden
        """Start the server (idempotent) and return self."""
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        """Stop the server and free its resources."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class ThrowawayCluster(ClusterBase):
    """A PostgreSQL cluster made with initdb in a temp dir, run as an unprivileged user.

    :param base_dir: directory for ``data/``, ``sock/`` and ``log``; a temp dir (removed on
        stop) if None.
    :param port: TCP port on 127.0.0.1; a free one if None.
    :param settings: extra postgresql.conf settings (values are quoted for you).
    :param password: superuser password for TCP (scram-sha-256); random if None.
    :param bin_dir: the server binaries to use instead of :func:`find_bin_dir`'s.
    :param major: PostgreSQL major to run (its installed binaries); None: the system's.
    """

    def __init__(self, base_dir: Path | None = None, port: int | None = None,
                 settings: dict[str, str] | None = None, password: str | None = None,
                 bin_dir: Path | None = None, major: int | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir(major)
        self._own_base = base_dir is None
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._fixed_port = port is not None
        self.port = port or 0
        self.settings = dict(settings or {})
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.os_user = server_os_user()
        self._running = False

    @property
    def base_dir(self) -> Path:
        if self._base_dir is None:
            raise SandboxError("cluster not started yet: call start() first")
        return self._base_dir

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "log"

    @property
    def running(self) -> bool:
        return self._running

    def owner_argv(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        """``argv`` prefixed with ``runuser -u USER --`` when we are root; bare names resolve
        to ``bin_dir`` when the binary lives there."""
        args = [os.fspath(a) for a in argv]
        if args and os.sep not in args[0] and (self.bin_dir / args[0]).is_file():
            args[0] = str(self.bin_dir / args[0])
        return as_user(args, self.os_user)

    def run_as_owner(self, argv: Sequence[str | os.PathLike[str]], *,
                     env: Mapping[str, str] | None = None, check: bool = True,
                     timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as the data directory's OS user; raise SandboxError if it fails."""
        full_env = minimal_env(env)
        cwd = self._base_dir if self._base_dir is not None else Path(tempfile.gettempdir())
        done = subprocess.run(self.owner_argv(argv), env=full_env, cwd=cwd, capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            out = (done.stderr or done.stdout).strip()
            raise SandboxError(f"{Path(os.fspath(argv[0])).name} failed "
                               f"(rc={done.returncode}): {out}")
        return done

    def give_to_owner(self, path: Path) -> None:
        """Recursively chown ``path`` to the server's OS user (no-op when not root)."""
        give_to(path, self.os_user)

    def start(self) -> Self:
        """initdb (first time only) and start the server; wait until it accepts connections."""
        if self._running:
            return self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._running = True
        atexit.register(self.stop)
        log.info("sandbox cluster up on %s:%s (data %s, os user %s)", self.host, self.port,
                 self.data_dir, self.os_user or "self")
        return self

    def _start(self) -> None:
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            if not self._fixed_port and (attempt or not self.port):
                self.port = free_port()
            self._write_port()
            try:
                self._pg_ctl_start()
                break
            except SandboxError as exc:
                if attempt + 1 == attempts or "already in use" not in str(exc):
                    raise
                log.warning("port %s taken meanwhile, retrying on another port", self.port)

    def stop(self) -> None:
        """Fast shutdown; remove the base directory if this object created it."""
        atexit.unregister(self.stop)
        if self._base_dir is not None and (self.data_dir / "postmaster.pid").exists():
            self.run_as_owner(["pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop"],
                              check=False, timeout=120)
        self._running = False
        if self._own_base and self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            self._base_dir = None

    def restart(self) -> None:
        """Restart the server (to apply settings that need it, e.g. archive_mode)."""
        self.run_as_owner(["pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop"],
                          timeout=120)
        self._pg_ctl_start()

    def configure(self, settings: Mapping[str, str]) -> None:
        """Append settings to postgresql.conf (later lines win); call restart() or reload."""
        lines = [f"{key} = {_conf_value(value)}" for key, value in settings.items()]
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n".join(lines) + "\n")

    def server_pid(self) -> int:
        """PID of the postmaster, read from postmaster.pid."""
        return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])

    # -- internals --------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        if self._base_dir is None:
            # under /tmp, not $TMPDIR: it may be private, and socket paths must stay short
            self._base_dir = Path(tempfile.mkdtemp(prefix="amprenta-pg-", dir="/tmp"))
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._own_base:
            self.base_dir.chmod(0o755)  # let the unprivileged user traverse
        for path, mode in ((self.data_dir, 0o700), (self.socket_dir, 0o755)):
            path.mkdir(exist_ok=True)
            path.chmod(mode)
        self.log_file.touch()
        for path in (self.data_dir, self.socket_dir, self.log_file):
            self.give_to_owner(path)

    def _initdb(self) -> None:
        pwfile = self.base_dir / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.password + "\n")
        self.give_to_owner(pwfile)
        try:
            self.run_as_owner(
                ["initdb", "-D", self.data_dir, "-U", SUPERUSER, "--auth-local=trust",
                 "--auth-host=scram-sha-256", "--encoding=UTF8", f"--locale={_utf8_locale()}",
                 f"--pwfile={pwfile}", "--no-sync", "--no-instructions"],
                timeout=300)
        finally:
            pwfile.unlink(missing_ok=True)
        self.configure({
            "listen_addresses": LOCALHOST,
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            **self.settings,
        })

    def _write_port(self) -> None:
        conf = self.data_dir / "postgresql.conf"
        text = conf.read_text(encoding="utf-8")
        line = f"port = {self.port}  # amprenta sandbox"
        if "# amprenta sandbox" in text:
            text = re.sub(r"^port = \d+  # amprenta sandbox$", line, text, flags=re.M)
        else:
            text += line + "\n"
        conf.write_text(text, encoding="utf-8")

    def _pg_ctl_start(self) -> None:
        argv: list[str | os.PathLike[str]] = [
            "pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", "120", "start"]
        done = self.run_as_owner(argv, check=False, timeout=180)
        if done.returncode != 0:
            tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-25:])
            raise SandboxError(f"pg_ctl start failed (rc={done.returncode}) for {self.data_dir} "
                               f"on port {self.port}: {done.stderr.strip()}\n--- log tail ---\n"
                               f"{tail}")
