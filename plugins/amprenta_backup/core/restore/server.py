"""The PostgreSQL server a restore writes to: does a database exist, lock, create, drop, rename."""

from __future__ import annotations

import logging
import secrets
from types import TracebackType

import psycopg
from psycopg import sql

from amprenta_backup.core.errors import ConnectionSettingsError, PreconditionError
from amprenta_backup.core.identifiers import MAX_NAME_BYTES, check_database_name
from amprenta_backup.core.pgtools import PgConnInfo

log = logging.getLogger(__name__)

MAINTENANCE_DATABASES = ("postgres", "template1")
LOCK_PREFIX = "amprenta-restore:"
TEMPORARY_MARK = "_amprenta_tmp_"


def temporary_name(name: str, token: str | None = None) -> str:
    """``<name, cut short>_amprenta_tmp_<8 hex>``: a fresh database name next to ``name``.

    The name is cut at a character boundary so the result stays within 63 bytes.

    :param name: the database the temporary one will replace
    :param token: instead of the random hex (a plan shows ``<8 hex>``)
    """
    suffix = f"{TEMPORARY_MARK}{token or secrets.token_hex(4)}"
    room = MAX_NAME_BYTES - len(suffix)
    stem = check_database_name(name).encode("utf-8")[:room].decode("utf-8", "ignore").rstrip()
    return check_database_name(stem + suffix)


class TargetServer:
    """An autocommit session on a server's maintenance database, for database-level DDL.

    Names always travel as ``sql.Identifier`` (quoted) or as bound parameters.

    :param conn: how to reach the server (its ``dbname`` is not used)
    """

    def __init__(self, conn: PgConnInfo) -> None:
        self.conn = conn
        self._db: psycopg.Connection[tuple[object, ...]] | None = None

    def __enter__(self) -> TargetServer:
        last: psycopg.Error | None = None
        for name in MAINTENANCE_DATABASES:
            try:
                self._db = psycopg.connect(**self.conn.with_database(name).connect_kwargs(),
                                           autocommit=True)
                return self
            except psycopg.errors.InvalidCatalogName as exc:  # no "postgres" database
                last = exc
            except psycopg.Error as exc:
                last = exc
                break
        detail = self.conn.redact(str(last).strip()) if last else "unknown error"
        raise ConnectionSettingsError(
            f"cannot connect to the restore target {self.describe()}: {detail}; check the "
            "target connection") from None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._db is None:
            raise RuntimeError("TargetServer is used outside its `with` block")
        return self._db

    def describe(self) -> str:
        """``user@host:port``: safe to log."""
        return f"{self.conn.user}@{self.conn.host}:{self.conn.port}"

    def exists(self, name: str) -> bool:
        row = self.db.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (check_database_name(name),)).fetchone()
        return row is not None

    def lock(self, name: str) -> None:
        """Hold a session lock on restores into ``name``; a second restore is refused."""
        row = self.db.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                              (LOCK_PREFIX + check_database_name(name),)).fetchone()
        if not row or not row[0]:
            raise PreconditionError(
                f"another restore into database {name!r} on {self.describe()} is running; "
                "wait for it to finish")

    def create(self, name: str, options: sql.Composable | None = None) -> None:
        """``CREATE DATABASE`` from template0 with ``options`` (owner, encoding, locale ...);
        PreconditionError if it exists (left untouched)."""
        query = sql.SQL("CREATE DATABASE {} TEMPLATE template0 {}").format(
            sql.Identifier(check_database_name(name)), options or sql.SQL(""))
        try:
            self.db.execute(query)
        except psycopg.errors.DuplicateDatabase:
            raise PreconditionError(
                f"database {name!r} already exists on {self.describe()}; it was left untouched. "
                f"Restore into a new name, or use mode replace with confirm={name!r}") from None
        log.info("created database %s on %s", name, self.describe())

    def drop(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS ... WITH (FORCE)``: ends its sessions first."""
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(check_database_name(name)))
        self.db.execute(query)
        log.info("dropped database %s on %s", name, self.describe())

    def rename(self, name: str, new_name: str) -> None:
        """``ALTER DATABASE ... RENAME TO ...``; fails if someone is connected to ``name``."""
        query = sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(check_database_name(name)),
            sql.Identifier(check_database_name(new_name)))
        self.db.execute(query)
        log.info("renamed database %s to %s on %s", name, new_name, self.describe())
