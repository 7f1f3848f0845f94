"""PostgreSQL client tools: where they are, how to call them, and the libpq environment.

Passwords reach the tools only through ``PGPASSWORD`` in the child's environment, never argv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from amprenta_backup.core.childenv import minimal_env
from amprenta_backup.core.errors import ConfigError

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


@lru_cache(maxsize=1)
def bin_dir() -> Path | None:
    """Folder of the PostgreSQL client tools (``AMPRENTA_PG_BINDIR`` or ``pg_config``)."""
    configured = os.environ.get("AMPRENTA_PG_BINDIR")
    if configured:
        return Path(configured)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                             check=False, env=minimal_env())
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        return candidate
    return None


def tool(name: str) -> str:
    """Absolute path of a client tool, or a ConfigError that says what to install."""
    folder = bin_dir()
    if folder and (folder / name).is_file():
        return str(folder / name)
    found = shutil.which(name)
    if found:
        return found
    raise ConfigError(
        f"{name} was not found; install the PostgreSQL 15 client tools "
        "(Debian/Ubuntu: apt-get install -y postgresql-client-15) or set AMPRENTA_PG_BINDIR"
    )


def tool_version(name: str) -> str:
    """``pg_dump (PostgreSQL) 15.18`` -> ``15.18``."""
    out = subprocess.run([tool(name), "--version"], capture_output=True, text=True, check=False,
                         env=minimal_env())
    match = re.search(r"(\d+(?:\.\d+)*)", out.stdout)
    return match.group(1) if match else out.stdout.strip()


def major(version: str) -> int:
    """Major version of ``15.18`` or ``15.18 (Debian 15.18-0+deb12u1)``."""
    match = re.match(r"\s*(\d+)", version)
    if not match:
        raise ValueError(f"not a PostgreSQL version: {version!r}")
    return int(match.group(1))


def pg_dump_argv(snapshot: str | None = None, compress: int = 0) -> list[str]:
    """argv of a custom-format ``pg_dump`` to stdout; the database comes from the env."""
    argv = [tool("pg_dump"), "--format=custom", f"--compress={compress}", "--no-sync"]
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
) -> list[str]:
    """argv of ``pg_restore``: into ``dbname`` (from the env) or to ``-f /dev/null``."""
    argv = [tool("pg_restore"), "--exit-on-error"]
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
