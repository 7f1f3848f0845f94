"""The server's globals (roles, memberships, per-role settings, tablespaces) once per run.

``pg_dumpall --globals-only`` streams through the same zstd -> sha256 pipeline as a dump,
into ``{prefix}/_globals/{server}/{YYYY}/{MM}/{DD}/{globals_id}/``. Several targets on one
server in one run share one object: the id is derived from the run and the server, and a
session advisory lock on the server makes the first backup store it and the others reuse it.

A backup takes them in two halves: :meth:`GlobalsCapture.take` reads them into memory while the
dump streams (a few KiB per role; nothing is written), :meth:`GlobalsCapture.store` writes them
once the dump succeeded, so a failed dump still leaves no globals behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from amprenta_backup.core import layout
from amprenta_backup.core.encryption import globals_identity, seal_for
from amprenta_backup.core.models import GlobalsRef, RunContext, utcnow
from amprenta_backup.core.pgtools import PgConnInfo, for_server, server_major, tool
from amprenta_backup.core.pipeline import stream_command
from amprenta_backup.core.storage.base import ObjectWriter, Storage

if TYPE_CHECKING:
    from amprenta_backup.core.backup.logical import BackupSettings

log = logging.getLogger(__name__)

LOCK_PREFIX = "amprenta-globals:"
_ROLES = "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1"
_TABLESPACES = "SELECT spcname FROM pg_tablespace WHERE spcname !~ '^pg_' ORDER BY 1"


def globals_id_for(run: RunContext, backup_id: str, server: str) -> str:
    """The globals id of ``server`` in this run: the same for every target and every try.

    Without an Airflow run (a backup from the command line) the globals belong to the backup.
    """
    if run.dag_id and run.run_id:
        return layout.make_backup_id(run.logical_date or layout.backup_time(backup_id),
                                     f"{run.dag_id}/{run.run_id}/globals/{server}")
    return layout.make_backup_id(layout.backup_time(backup_id), f"{backup_id}/globals")


def pg_dumpall_argv(database: str, role_passwords: bool, binary: str | None = None
                    ) -> list[str]:
    """argv of ``pg_dumpall --globals-only`` to stdout; connection settings come from the env."""
    argv = [binary or tool("pg_dumpall"), "--globals-only", f"--database={database}"]
    if not role_passwords:
        argv.append("--no-role-passwords")
    return argv


def can_read_passwords(db: psycopg.Connection[tuple[Any, ...]]) -> bool:
    """True if this session may read ``pg_authid`` (superusers; not RDS or Cloud SQL)."""
    row = db.execute("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')").fetchone()
    return bool(row and row[0])


class _MemoryWriter(ObjectWriter):
    """Holds a small object's bytes until it may be stored."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def _commit(self) -> None:
        """Nothing to make visible: the caller stores :attr:`data`."""

    def _abort(self) -> None:
        self.data.clear()


@dataclass(frozen=True)
class TakenGlobals:
    """Globals read from the server, not stored yet.

    :param ref: what the stored globals will be
    :param folder: their folder
    :param data: the bytes of ``ref.key`` (compressed, encrypted when encryption is on)
    """

    ref: GlobalsRef
    folder: str
    data: bytes


class GlobalsCapture:
    """Takes (or finds) the globals of one server for one run.

    :param storage: where they go
    :param settings: prefix, compression and checksum of the backups
    """

    def __init__(self, storage: Storage, settings: BackupSettings) -> None:
        self.storage = storage
        self.settings = settings

    def ensure(self, conn: PgConnInfo, run: RunContext, backup_id: str) -> GlobalsRef:
        """The globals of ``conn``'s server in this run, taken now unless already stored."""
        taken = self.take(conn, run, backup_id)
        with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
            return self.store(db, taken)

    def take(self, conn: PgConnInfo, run: RunContext, backup_id: str
             ) -> GlobalsRef | TakenGlobals:
        """The stored globals of this run, or the server's read into memory (nothing written)."""
        server = layout.server_name(conn.host, conn.port)
        globals_id = globals_id_for(run, backup_id, server)
        folder = layout.globals_folder(self.settings.prefix, server, globals_id)
        existing = self._stored(folder)
        if existing is not None:
            return existing
        with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
            return self._take(db, conn, server, globals_id, folder)

    def store(self, db: psycopg.Connection[Any], taken: GlobalsRef | TakenGlobals
              ) -> GlobalsRef:
        """Store what :meth:`take` read, unless another target of the run stored them first.

        :param db: a connection to the same server, for its advisory lock (it may be inside
            a transaction: the lock is the session's)
        """
        if isinstance(taken, GlobalsRef):
            log.info("globals %s of %s already stored; reused", taken.globals_id, taken.server)
            return taken
        lock = LOCK_PREFIX + taken.folder
        db.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock,))
        try:
            existing = self._stored(taken.folder)
            if existing is not None:
                log.info("globals %s of %s already stored; reused", existing.globals_id,
                         existing.server)
                return existing
            ref = taken.ref
            self.storage.put_bytes(ref.key, taken.data)
            self.storage.put_bytes(layout.globals_info_key(taken.folder), ref.to_json())
        finally:
            db.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
        log.info("stored the globals of %s (%d roles, %d tablespaces) at %s: %d bytes",
                 ref.server, len(ref.roles), len(ref.tablespaces), self.storage.uri(ref.key),
                 ref.stored_bytes)
        return ref

    def _stored(self, folder: str) -> GlobalsRef | None:
        key = layout.globals_info_key(folder)
        if not self.storage.exists(key):
            return None
        try:
            return GlobalsRef.from_json(self.storage.get_bytes(key))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("unreadable %s (%s): taking the globals again", key, exc)
            return None

    def _take(self, db: psycopg.Connection[tuple[Any, ...]], conn: PgConnInfo, server: str,
              globals_id: str, folder: str) -> TakenGlobals:
        started = utcnow()
        passwords = can_read_passwords(db)
        if not passwords:
            log.warning("%s cannot read pg_authid (a managed service?): the globals are taken "
                        "with --no-role-passwords; restored roles will need new passwords",
                        conn.describe())
        version = str(db.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        pg_dumpall = for_server("pg_dumpall", server_major(db))
        roles = tuple(str(r[0]) for r in db.execute(_ROLES).fetchall())
        tablespaces = tuple(str(r[0]) for r in db.execute(_TABLESPACES).fetchall())
        compression = self.settings.compression
        key = layout.globals_key(folder, compression.enabled)
        seal = seal_for(self.settings.keys, globals_identity(globals_id, key))
        writer = _MemoryWriter()
        argv = pg_dumpall_argv(conn.dbname, passwords, pg_dumpall.path("pg_dumpall"))
        result = stream_command(argv, conn.env(), writer, compression, self.settings.checksum,
                                seal)
        ref = GlobalsRef(
            globals_id=globals_id, server=server, key=key, sha256=result.sha256,
            stored_bytes=result.stored_bytes, raw_bytes=result.raw_bytes,
            compression=compression.name, role_passwords=passwords, taken_at=started,
            server_version=version, pg_dumpall_version=pg_dumpall.version,
            roles=roles, tablespaces=tablespaces, encryption=seal.record() if seal else None)
        return TakenGlobals(ref=ref, folder=folder, data=bytes(writer.data))
