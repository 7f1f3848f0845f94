"""Health of WAL archiving, from ``pg_stat_archiver``: failures, backlog and the current RPO.

The current RPO is how long WAL has been waiting to be archived: the time since the last
segment was archived, if WAL has been written after it. With ``archive_timeout`` set, a
healthy archiver keeps it under that timeout. Results are the :class:`CheckResult` of
``core.health``, so ``daily_health`` stores and alerts on them like any other check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from amprenta_backup.core.errors import BackupError, first_line
from amprenta_backup.core.health import CheckResult, Level
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.names import parse_lsn, segment_number

log = logging.getLogger(__name__)

BACKLOG_WARNING = 10

_STATE = """
SELECT current_setting('archive_mode') AS archive_mode,
       current_setting('archive_timeout')::interval AS archive_timeout,
       pg_current_wal_lsn()::text AS current_lsn,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size,
       a.archived_count, a.last_archived_wal, a.last_archived_time,
       a.failed_count, a.last_failed_wal, a.last_failed_time
FROM pg_stat_archiver a
"""


@dataclass(frozen=True)
class ArchiverState:
    """One reading of the server's archiving state."""

    archive_mode: str
    archive_timeout_seconds: float
    current_lsn: str
    segment_size: int
    archived_count: int
    last_archived_wal: str | None
    last_archived_time: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_time: datetime | None
    ready_files: int | None

    @property
    def pending(self) -> bool:
        """Whether WAL was written after the end of the last archived segment (assumed when
        the last archived file was a timeline history file)."""
        name = self.last_archived_wal
        if not name or name.endswith(".history"):
            return True
        _, segno = segment_number(name[:24], self.segment_size)
        return parse_lsn(self.current_lsn) > (segno + 1) * self.segment_size


def read_state(conn: PgConnInfo) -> ArchiverState:
    """Read ``pg_stat_archiver`` and the settings; the ``.ready`` count needs pg_monitor."""
    with psycopg.connect(**conn.connect_kwargs(), autocommit=True, row_factory=dict_row) as db:
        row = db.execute(_STATE).fetchone()
        assert row is not None
        try:
            ready = db.execute("SELECT count(*) AS n FROM pg_ls_archive_statusdir() "
                               "WHERE name LIKE '%.ready'").fetchone()
            ready_files: int | None = int(ready["n"]) if ready else None
        except psycopg.errors.InsufficientPrivilege:
            ready_files = None
    return ArchiverState(
        archive_mode=str(row["archive_mode"]),
        archive_timeout_seconds=row["archive_timeout"].total_seconds(),
        current_lsn=str(row["current_lsn"]), segment_size=int(row["segment_size"]),
        archived_count=int(row["archived_count"]), last_archived_wal=row["last_archived_wal"],
        last_archived_time=row["last_archived_time"], failed_count=int(row["failed_count"]),
        last_failed_wal=row["last_failed_wal"], last_failed_time=row["last_failed_time"],
        ready_files=ready_files)


def check_wal(state: ArchiverState, target: str, now: datetime, rpo_seconds: float,
              archive: WalArchive | None = None) -> list[CheckResult]:
    """The WAL checks of one cluster: mode, failures, RPO, backlog, and the archive itself."""
    if state.archive_mode == "off":
        return [CheckResult("wal_archive_mode", Level.CRITICAL, "archive_mode is off: no WAL is "
                            "archived, point-in-time recovery is impossible",
                            "set archive_mode = on and archive_command = 'amprenta-wal push %p "
                            "%f' (restart needed)", target)]
    results = [_failures(state, target), _rpo(state, target, now, rpo_seconds)]
    if state.ready_files is not None:
        level = Level.WARNING if state.ready_files > BACKLOG_WARNING else Level.OK
        results.append(CheckResult("wal_backlog", level, f"{state.ready_files} WAL files wait "
                                   "to be archived", "the archiver is behind: check storage "
                                   "speed and BACKUP_WAL_PARALLEL" if level != Level.OK else "",
                                   target))
    if archive is not None and state.last_archived_wal:
        results.append(_in_archive(state.last_archived_wal, archive, target))
    return results


def cluster_wal_checks(conn: PgConnInfo, target: str, now: datetime, rpo_seconds: float,
                       archive: Callable[[], WalArchive]) -> list[CheckResult]:
    """The WAL checks of the cluster at ``conn``: its archiver state, then the archive.

    A server that cannot be read, or an archive that cannot be, is a critical result, not
    an error: health reports every problem it finds.
    """
    try:
        state = read_state(conn)
    except psycopg.Error as exc:
        return [CheckResult("wal_archiver_readable", Level.CRITICAL,
                            f"cannot read pg_stat_archiver on {conn.describe()}: "
                            f"{conn.redact(first_line(exc))}",
                            "check the server and its connection", target)]
    try:
        return check_wal(state, target, now, rpo_seconds, archive())
    except BackupError as exc:
        log.warning("WAL archive not checked: %s", exc)
        return check_wal(state, target, now, rpo_seconds) + [CheckResult(
            "wal_in_archive", Level.CRITICAL, f"the WAL archive cannot be read: {exc}",
            "fix the storage settings", target)]


def _failures(state: ArchiverState, target: str) -> CheckResult:
    failing = state.last_failed_time is not None and (
        state.last_archived_time is None or state.last_failed_time > state.last_archived_time)
    if failing:
        return CheckResult("wal_archive_failures", Level.CRITICAL,
                           f"archiving is failing: {state.failed_count} failures, the last on "
                           f"{state.last_failed_wal} at {state.last_failed_time:%Y-%m-%d %H:%M:%S}"
                           " and no success since",
                           "read the server log for amprenta-wal's error (archive_command), "
                           "and the archiver log in BACKUP_WAL_SPOOL", target)
    detail = f"{state.archived_count} archived, {state.failed_count} failures since the stats reset"
    return CheckResult("wal_archive_failures", Level.OK, detail, target=target)


def _rpo(state: ArchiverState, target: str, now: datetime, rpo_seconds: float) -> CheckResult:
    timeout = state.archive_timeout_seconds
    if not state.pending:
        return CheckResult("wal_rpo", Level.OK, "no WAL waits to be archived (RPO 0 s)",
                           target=target, value=0.0)
    if state.last_archived_time is None:
        return CheckResult("wal_rpo", Level.CRITICAL, "WAL is written but none was ever archived",
                           "check archive_command (server log)", target)
    age = (now - state.last_archived_time).total_seconds()
    detail = f"current RPO {age:.0f} s (WAL unarchived since the last archived segment)"
    if age > rpo_seconds:
        return CheckResult("wal_rpo", Level.CRITICAL, f"{detail}; target {rpo_seconds:.0f} s",
                           "archiving stalls: check archive_command and pg_stat_archiver",
                           target, age)
    if not timeout:
        return CheckResult("wal_rpo", Level.WARNING, f"{detail}; archive_timeout is 0, so a "
                           "quiet database keeps WAL unarchived until a segment fills",
                           "set archive_timeout = 60 (seconds) for an RPO near a minute", target,
                           age)
    if age > 2 * timeout + 30:
        return CheckResult("wal_rpo", Level.WARNING, f"{detail}; archive_timeout is "
                           f"{timeout:.0f} s", "archiving lags behind archive_timeout", target,
                           age)
    return CheckResult("wal_rpo", Level.OK, f"{detail}; archive_timeout {timeout:.0f} s",
                       target=target, value=age)


def _in_archive(name: str, archive: WalArchive, target: str) -> CheckResult:
    if archive.has(name):
        return CheckResult("wal_in_archive", Level.OK, f"{name} is in {archive.storage.uri()}",
                           target=target)
    return CheckResult("wal_in_archive", Level.CRITICAL,
                       f"the server reports {name} archived, but it is not in the archive at "
                       f"{archive.storage.uri(archive.key(name))}",
                       "archive_command writes elsewhere: check BACKUP_WAL_TARGET and the storage "
                       "settings in the amprenta-wal config file on the server", target)
