"""Restores: a plan of what would be restored where, then a restore that refuses bad requests
before touching anything and proves the dump intact before it reports it restored (``jobs=1``
before it starts; ``jobs > 1`` on its one read, dropping what it loaded on a mismatch). Creating,
and on failure dropping, the database it restores into: restore/creation.py."""

from __future__ import annotations

import dataclasses
import functools
import logging
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from amprenta_backup.core.backup.rowcount import count_listed, count_rows_at_once
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.connections import Resolver
from amprenta_backup.core.constants import DUMP_NAME
from amprenta_backup.core.encryption import KeyService
from amprenta_backup.core.errors import (
    BackupDamaged,
    BackupError,
    ChecksumMismatch,
    DumpError,
    ObjectMissing,
    PreconditionError,
    RestoreError,
)
from amprenta_backup.core.identifiers import conninfo_dbname
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo, pg_restore_argv, tool
from amprenta_backup.core.readback import Progress, Readback, ToolInput, data_key, read_back
from amprenta_backup.core.restore.creation import (
    Restore,
    created_first,
    drop_quietly,
    restore_into,
)
from amprenta_backup.core.restore.parts import PartsRestore
from amprenta_backup.core.restore.plan import (
    RestorePlan,
    make_plan,
    quote_ident,
    selected,
)
from amprenta_backup.core.restore.properties import PropertiesResult
from amprenta_backup.core.restore.request import LATEST, NEW_DATABASE, REPLACE, RestoreRequest
from amprenta_backup.core.restore.server import TargetServer, temporary_name
from amprenta_backup.core.restore.staged import LOADED, StagedRestore
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.tracing import span

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], Progress | None]
"""``(phase, total stored bytes) -> callback``: how a caller shows progress (the CLI's bar)."""

@dataclass(frozen=True)
class RestoreResult:
    """What a restore did.

    :param plan: the plan it carried out
    :param performed: False for a dry run
    :param seconds: from the request to the counted rows: the achieved RTO
    :param verify_seconds: the plan, and with ``jobs=1`` reading the dump back to prove it
        intact before anything is created (``jobs > 1`` and parallel dumps check the sha256
        on their one read, inside ``restore_seconds``)
    :param restore_seconds: creating the database and running pg_restore
    :param row_counts: ``table -> (rows restored, rows in the manifest)``
    :param properties: the database properties it set (None for older backups)
    """

    plan: RestorePlan
    performed: bool
    seconds: float
    verify_seconds: float = 0.0
    restore_seconds: float = 0.0
    row_counts: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    properties: PropertiesResult | None = None

    @property
    def mismatches(self) -> list[str]:
        """Tables whose restored row count differs from the manifest's, in words."""
        return [f"{table}: {got if got is not None else 'missing'} rows restored, "
                f"{want if want is not None else 'none'} in the manifest"
                for table, (got, want) in sorted(self.row_counts.items()) if got != want]

    @property
    def message(self) -> str:
        plan = self.plan
        if not self.performed:
            return f"dry run: nothing was touched\n{plan.text()}"
        rows = sum(got or 0 for got, _ in self.row_counts.values())
        return (f"restored backup {plan.backup_id} of {plan.source_target} into database "
                f"{plan.database!r} on {plan.target_server} in {self.seconds:.1f} s (RTO; "
                f"plan and checksum {self.verify_seconds:.1f} s, restore "
                f"{self.restore_seconds:.1f} s): "
                f"{len(self.row_counts)} tables, {rows} rows, "
                + ("row counts match the manifest" if not self.mismatches
                   else f"ROW COUNTS DIFFER: {'; '.join(self.mismatches)}")
                + f"; read from {plan.location}" + _properties_text(self.properties))

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.to_dict(), "performed": self.performed,
                "seconds": self.seconds, "verify_seconds": self.verify_seconds,
                "restore_seconds": self.restore_seconds,
                "row_counts": {t: {"restored": got, "manifest": want}
                               for t, (got, want) in sorted(self.row_counts.items())},
                "row_counts_match": not self.mismatches,
                "properties": self.properties.to_dict() if self.properties else None}


class Restorer:
    """Plans and runs restores from one storage and catalog.

    :param storage: where the backups are
    :param catalog: where their records are
    :param resolve: ``(conn_id, database) -> PgConnInfo``
    :param keys: opens encrypted backups
    """

    def __init__(self, storage: Storage, catalog: Catalog, resolve: Resolver,
                 keys: KeyService | None = None) -> None:
        self.storage = storage
        self.catalog = catalog
        self.resolve = resolve
        self.keys = keys

    def plan(self, request: RestoreRequest, workdir: str | None = None) -> RestorePlan:
        """What would be restored where; PreconditionError if the request must be refused."""
        return make_plan(self.storage, self.catalog, self.resolve, request, workdir)

    def run(self, request: RestoreRequest, progress: ProgressFactory | None = None,
            workdir: str | None = None) -> RestoreResult:
        """Restore as planned; a dry run returns the plan without touching anything.

        ``replace`` restores into a temporary database and swaps it in only once the row
        counts match: until then the database it replaces is untouched.
        """
        started = time.monotonic()
        chosen: list[str] = []
        try:
            with span("restore", backup_id=request.backup_id, database=request.database,
                      mode=request.mode, jobs=request.jobs):
                return self._run(request, progress, workdir, started, chosen)
        except (ChecksumMismatch, ObjectMissing) as exc:
            backup_id = getattr(exc, "backup_id", None) or (chosen[0] if chosen else None)
            if backup_id is None:
                raise
            self._mark_corrupt(backup_id, str(exc))
            if isinstance(exc, ChecksumMismatch):
                raise
            raise BackupDamaged(f"backup {backup_id} is CORRUPT: {exc}; choose another backup",
                                backup_id) from exc

    def _mark_corrupt(self, backup_id: str, detail: str) -> None:
        """Record a backup found damaged, so that ``latest`` no longer chooses it."""
        try:
            if self.catalog.set_status(backup_id, Status.CORRUPT, f"restore refused: {detail}"):
                log.error("backup %s marked CORRUPT: %s", backup_id, detail)
        except BackupError as exc:
            log.warning("backup %s is damaged but could not be marked CORRUPT: %s", backup_id,
                        exc)

    def _run(self, request: RestoreRequest, progress: ProgressFactory | None,
             workdir: str | None, started: float, chosen: list[str]) -> RestoreResult:
        with span("restore.plan"):
            plan = self.plan(request, workdir)
        chosen.append(plan.backup_id)
        data_key(self.keys, plan.manifest)  # a missing or wrong key: refused, nothing created
        log.info("restore plan:\n%s", plan.text())
        if request.dry_run:
            return RestoreResult(plan, performed=False, seconds=_since(started))
        with TargetServer(plan.conn) as server:
            server.lock(request.database)
            if request.mode == REPLACE:
                result = self._replace(server, plan, started, progress, workdir)
            else:
                result = self._restore(server, plan, started, progress, workdir)
        if result.mismatches:
            raise RestoreError(f"{result.message}; database {plan.database!r} was kept for "
                               "inspection")
        log.info("%s", result.message)
        return result

    def _replace(self, server: TargetServer, plan: RestorePlan, started: float,
                 progress: ProgressFactory | None, workdir: str | None) -> RestoreResult:
        """Restore into a temporary database; only if that succeeds, drop the target database
        and rename the temporary one to it. Any earlier failure drops only the temporary one."""
        work = dataclasses.replace(plan, database=temporary_name(plan.database))
        untouched = (f"database {plan.database!r} was left untouched and the temporary "
                     f"database {work.database!r} was dropped")
        try:
            result = self._restore(server, work, started, progress, workdir)
            if result.mismatches:
                raise RestoreError(f"{result.message}; nothing was replaced: {untouched}")
        except PreconditionError:  # the temporary name exists already: not ours to drop
            raise
        except BaseException:
            drop_quietly(server, work.database)
            raise
        try:
            server.drop(plan.database)
        except psycopg.Error as exc:
            drop_quietly(server, work.database)
            raise RestoreError(f"dropping database {plan.database!r} on {plan.target_server} "
                               f"failed: {plan.conn.redact(str(exc).strip())}; nothing was "
                               f"replaced: {untouched}") from None
        try:
            server.rename(work.database, plan.database)
        except psycopg.Error as exc:
            old, new = quote_ident(work.database), quote_ident(plan.database)
            raise RestoreError(
                f"database {plan.database!r} on {plan.target_server} was dropped but renaming "
                f"the restored database {work.database!r} to it failed: "
                f"{plan.conn.redact(str(exc).strip())}; the restored data is in "
                f"{work.database!r}: end its sessions and run ALTER DATABASE {old} RENAME TO "
                f"{new}") from None
        return dataclasses.replace(result, plan=plan, seconds=_since(started))

    def _restore(self, server: TargetServer, plan: RestorePlan, started: float,
                 progress: ProgressFactory | None, workdir: str | None) -> RestoreResult:
        """Prove the dump intact, restore it into ``plan.database``, count the rows."""
        restore: Restore
        counted: dict[str, int] = {}  # tables counted as their loader finished (jobs > 1)
        if plan.manifest.parts:  # a parallel dump (core/restore/parts.py): one pass
            restore = created_first(PartsRestore(self.storage, plan, _restore_argv, self.keys,
                                                 _phase(progress, "restore", plan),
                                                 workdir).restore)
        elif plan.request.jobs > 1:  # one pass: the temporary file is hashed as it is written
            restore = functools.partial(self._restore_staged, plan, progress, workdir, counted)
        else:
            with span("restore.checksum", backup_id=plan.backup_id):
                self._check_checksum(plan, progress)
            restore = created_first(functools.partial(self._restore_stream, plan, progress))
        _warn_unchecked(plan)
        verified = time.monotonic()
        with span("restore.pg_restore", database=plan.database, jobs=plan.request.jobs):
            props = restore_into(server, plan, restore)
        restored = time.monotonic()
        with span("restore.count_rows"):
            counts = _count(plan, counted)
        expected = selected(plan.request, plan.manifest.table_counts)
        return RestoreResult(
            plan, performed=True, seconds=_since(started),
            verify_seconds=round(verified - started, 3),
            restore_seconds=round(restored - verified, 3),
            row_counts={n: (counts.get(n), expected.get(n)) for n in set(counts) | set(expected)},
            properties=props)

    def _check_checksum(self, plan: RestorePlan, progress: ProgressFactory | None) -> None:
        readback = read_back(self.storage, plan.manifest, None, decompress=False,
                             progress=_phase(progress, "checksum", plan))
        problems = readback.mismatches(plan.manifest)
        if problems:
            raise ChecksumMismatch(_corrupt(plan, problems) + "; nothing was restored")

    def _restore_stream(self, plan: RestorePlan, progress: ProgressFactory | None) -> None:
        """Stream storage -> zstd -> pg_restore stdin, hashing again on the way."""
        with ToolInput(_restore_argv(plan), plan.target_env()) as tool:
            readback = self._download(plan, progress, tool)
            code, stderr = tool.finish()
        self._check_again(plan, readback)
        if code != 0:
            raise DumpError(f"pg_restore exited with code {code}: {stderr or 'no message'}")

    def _restore_staged(self, plan: RestorePlan, progress: ProgressFactory | None,
                        workdir: str | None, counted: dict[str, int],
                        create: Callable[[], None]) -> None:
        """``jobs > 1``: restored from a temporary file as it is written (restore/staged.py);
        the download starts before ``create`` makes the database; each loader's tables are
        counted into ``counted`` as soon as it has finished."""
        staged = StagedRestore(lambda *extra: _restore_argv(plan, jobs=1, options=extra),
                               [plan.pg_restore or tool("pg_restore"), "--list", "--verbose"],
                               plan.target_env(), plan.request.jobs, plan.manifest.table_counts,
                               functools.partial(_count_loaded, plan))
        with tempfile.TemporaryDirectory(prefix="amprenta-restore-", dir=workdir) as tmp:
            path = Path(tmp) / DUMP_NAME
            last = staged.run(path, lambda sink: self._download(plan, progress, sink),
                              lambda readback: self._check_again(plan, readback, LOADED), create)
            _restore_file(plan, path, *last)
        counted.update(staged.counted)

    def _download(self, plan: RestorePlan, progress: ProgressFactory | None,
                  sink: Callable[[bytes], object]) -> Readback:
        return read_back(self.storage, plan.manifest, sink, decompress=True,
                         progress=_phase(progress, "restore", plan), keys=self.keys)

    def _check_again(self, plan: RestorePlan, readback: Readback,
                     when: str = " (changed while restoring)") -> None:
        problems = readback.mismatches(plan.manifest)
        if problems:
            raise ChecksumMismatch(_corrupt(plan, problems) + when)


def _warn_unchecked(plan: RestorePlan) -> None:
    if not plan.manifest.sha256:
        log.warning("backup %s has no sha256 (BACKUP_CHECKSUM_ENABLED was off): only its "
                    "size is checked", plan.backup_id)


def _properties_text(props: PropertiesResult | None) -> str:
    if props is None:
        return ""
    text = f"; set {', '.join(props.applied)}" if props.applied else ""
    text += f"; left out {'; '.join(props.skipped)}" if props.skipped else ""
    return text + (f"; PROPERTIES DIFFER: {'; '.join(props.differences)}"
                   if props.differences else "")


def _restore_argv(plan: RestorePlan, path: Path | None = None, jobs: int | None = None,
                  options: tuple[str, ...] = ()) -> list[str]:
    request = plan.request
    extra = ("--no-owner", "--no-privileges") if request.no_owner else ()
    return pg_restore_argv(dbname=conninfo_dbname(plan.database),
                           jobs=request.jobs if jobs is None else jobs,
                           path=str(path) if path else None, schemas=request.schemas,
                           tables=request.tables, extra=extra + options,
                           binary=plan.pg_restore)


def _restore_file(plan: RestorePlan, path: Path, *extra: str) -> None:
    done = subprocess.run(_restore_argv(plan, path, options=extra), env=plan.target_env(),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        tail = done.stderr[-4000:].decode("utf-8", "replace").strip()
        raise DumpError(f"pg_restore exited with code {done.returncode}: {tail or 'no message'}")


def _count(plan: RestorePlan, counted: dict[str, int]) -> dict[str, int]:
    """Rows of every user table of the restored database over ``jobs`` connections; those
    ``counted`` already (as their loader finished) are not counted again."""
    return _counting(plan, lambda conn: {**counted, **count_rows_at_once(
        conn, plan.request.jobs, skip=frozenset(counted))})


def _count_loaded(plan: RestorePlan, tables: list[tuple[str, str]]) -> dict[str, int]:
    """Rows of the ``(schema, table)`` pairs a data loader has just restored."""
    return _counting(plan, lambda conn: count_listed(conn, tables))


def _counting(plan: RestorePlan, count: Callable[[PgConnInfo], dict[str, int]]) -> dict[str, int]:
    conn: PgConnInfo = plan.conn.with_database(plan.database)
    try:
        return count(conn)
    except psycopg.Error as exc:
        raise RestoreError(f"counting the restored rows in {conn.describe()} failed: "
                           f"{conn.redact(str(exc).strip())}") from None


def _corrupt(plan: RestorePlan, problems: list[str]) -> str:
    return (f"backup {plan.backup_id} of target {plan.source_target} is corrupt: "
            f"{'; '.join(problems)} ({plan.location})")


def _phase(progress: ProgressFactory | None, phase: str, plan: RestorePlan) -> Progress | None:
    return progress(phase, plan.manifest.stored_bytes) if progress else None


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


__all__ = ["LATEST", "NEW_DATABASE", "REPLACE", "RestorePlan", "RestoreRequest", "RestoreResult",
           "Restorer"]
