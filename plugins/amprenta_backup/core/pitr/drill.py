"""PITR drill: prove the RPO. Mark a time T on the source between two marker rows, restore to T
into a scratch cluster, and check the row before T is back and the row after T is not.

Each drill writes two small rows into ``amprenta_pitr_drill_marks`` on the source (the
database of ``BACKUP_PITR_CONN_ID``) and keeps its outcome, achieved RPO and RTO in the
catalog's ``pitr_drills`` table. The scratch cluster is a folder named
``amprenta-pitr-drill-*`` on the worker; only such a folder is ever removed.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import ConfigError, PreconditionError
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pitr.localserver import LocalServer, free_port
from amprenta_backup.core.pitr.restore import PitrReport, PitrRequest
from amprenta_backup.core.wal.archive import WalArchive

if TYPE_CHECKING:
    from amprenta_backup.core.pitr.workflow import PointInTime

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "amprenta-pitr-drill-"
MARKS = "amprenta_pitr_drill_marks"


@dataclass(frozen=True)
class Scratch:
    """A scratch cluster's folder, data directory and port on this host."""

    folder: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "data.pitr.log"

    @classmethod
    def create(cls, parent: str) -> Scratch:
        folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=parent))
        folder.chmod(0o711)  # the server's OS user must reach data/ inside
        return cls(folder, free_port())

    def remove(self, os_user: str | None) -> None:
        """Stop the scratch server if it runs and delete the folder."""
        if not self.folder.name.startswith(SCRATCH_PREFIX):
            raise ConfigError(f"{self.folder} is not a PITR drill scratch folder; not removed")
        if self.data_dir.exists():
            LocalServer(self.data_dir, os_user, self.log_file).stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class Marks:
    """T, between the drill's ``before`` row (committed before) and ``after`` row (after)."""

    drill_id: str
    target_time: datetime
    last_segment: str


def mark_source(conn: PgConnInfo, archive: WalArchive, drill_id: str,
                wait_seconds: float = 600) -> Marks:
    """Write the marker rows around T, switch WAL and wait until it is archived."""
    with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
        db.execute(f"CREATE TABLE IF NOT EXISTS {MARKS} (drill_id text NOT NULL, phase text "
                   "NOT NULL, noted_at timestamptz NOT NULL DEFAULT clock_timestamp())")
        db.execute(f"INSERT INTO {MARKS} (drill_id, phase) VALUES (%s, 'before')", (drill_id,))
        time.sleep(0.2)
        row = db.execute("SELECT clock_timestamp()").fetchone()
        time.sleep(0.2)
        db.execute(f"INSERT INTO {MARKS} (drill_id, phase) VALUES (%s, 'after')", (drill_id,))
        switched = db.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    assert row is not None and switched is not None
    segment = str(switched[0])
    if not archive.wait_for(segment, wait_seconds):
        raise PreconditionError(f"WAL segment {segment} was not archived within {wait_seconds:.0f}"
                                " s; the drill cannot restore past T. Check archive_command and "
                                "pg_stat_archiver")
    return Marks(drill_id, row[0], segment)


def check_rows(report: PitrReport, conn: PgConnInfo, drill_id: str) -> dict[str, int]:
    """Marker rows of this drill in the restored copy; raises unless before=1 and after=0."""
    local = PgConnInfo(host="127.0.0.1", port=report.port, user=conn.user, dbname=conn.dbname,
                       password=conn.password)
    with psycopg.connect(**local.connect_kwargs(), autocommit=True) as db:
        rows = db.execute(f"SELECT phase, count(*) FROM {MARKS} WHERE drill_id = %s "
                          "GROUP BY phase", (drill_id,)).fetchall()
    found = {"before": 0, "after": 0} | {str(phase): int(n) for phase, n in rows}
    if found != {"before": 1, "after": 0}:
        raise PreconditionError(f"restored to {report.target_time} but the drill's rows are "
                                f"{found} instead of before=1, after=0: the restore is not at T")
    return found


class DrillLog:
    """The ``pitr_drills`` rows in the catalog.

    :param catalog: the backup catalog
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def _run(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self.catalog.cursor() as cur:
            cur.execute(sql.encode(), params)
            return list(cur.fetchall()) if cur.description else []

    def start(self, drill_id: str, target: str, dag_id: str | None, run_id: str | None) -> None:
        self._run("INSERT INTO pitr_drills (id, target, status, dag_id, run_id) VALUES "
                  "(%(id)s, %(target)s, 'running', %(dag)s, %(run)s) ON CONFLICT (id) DO UPDATE "
                  "SET status = 'running', error = NULL, updated_at = now()",
                  {"id": drill_id, "target": target, "dag": dag_id, "run": run_id})

    def finish(self, drill_id: str, report: PitrReport | None, rows: dict[str, int] | None,
               error: str | None, target_time: datetime | None = None) -> None:
        self._run(
            "UPDATE pitr_drills SET status = %(status)s, finished_at = now(), "
            "backup_id = coalesce(%(backup)s, backup_id), "
            "target_time = coalesce(%(t)s, target_time), recovered_to = %(recovered)s, "
            "achieved_rpo_seconds = %(rpo)s, rto_seconds = %(rto)s, rows_checked = %(rows)s, "
            "error = %(error)s, updated_at = now() WHERE id = %(id)s",
            {"id": drill_id, "status": "failed" if error else "passed",
             "backup": report.backup_id if report else None,
             "t": report.target_time if report else target_time,
             "recovered": report.recovered_to if report else None,
             "rpo": report.achieved_rpo_seconds if report else None,
             "rto": report.rto_seconds if report else None,
             "rows": json.dumps(rows) if rows is not None else None, "error": error})

    def close_unfinished(self, drill_id: str) -> bool:
        """Mark a drill still ``running`` as failed; True if one was."""
        rows = self._run("UPDATE pitr_drills SET status = 'failed', finished_at = now(), "
                         "error = 'the drill stopped before it finished; see the task logs', "
                         "updated_at = now() WHERE id = %(id)s AND status = 'running' "
                         "RETURNING id", {"id": drill_id})
        return bool(rows)

    def get(self, drill_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT * FROM pitr_drills WHERE id = %(id)s", {"id": drill_id})
        return rows[0] if rows else None


class PitrDrill:
    """One PITR drill's lifecycle: mark T, restore to T in a scratch cluster, tear it down.

    Every step records its outcome in ``pitr_drills``, whatever is raised; a drill stopped
    between steps is closed as failed by :meth:`teardown`.

    :param pitr: the PITR workflows of the drilled cluster
    """

    def __init__(self, pitr: PointInTime) -> None:
        self.pitr = pitr
        self.log = DrillLog(pitr.catalog)

    def mark(self, drill_id: str, dag_id: str | None = None,
             run_id: str | None = None) -> Marks:
        """Start the drill: the ``before`` row, T, the ``after`` row, WAL switched and archived."""
        self.log.start(drill_id, self.pitr.target, dag_id, run_id)
        try:
            return mark_source(self.pitr.cluster_conninfo(), self.pitr.archive, drill_id,
                               self.pitr.settings.archive_wait_seconds)
        except BaseException as exc:
            self.log.finish(drill_id, None, None, f"marking the source failed: {exc}")
            raise

    def scratch(self) -> Scratch:
        """A new scratch folder (and port) for the restore; name it before writing into it."""
        return Scratch.create(self.pitr.settings.scratch_dir)

    def restore(self, drill_id: str, when: datetime,
                scratch: Scratch) -> tuple[PitrReport, dict[str, int]]:
        """Restore to ``when`` into ``scratch`` and check the marker rows; recorded either way."""
        report: PitrReport | None = None
        try:
            report = self.pitr.restore(PitrRequest(when, scratch.data_dir, scratch.port))
            rows = check_rows(report, self.pitr.cluster_conninfo(), drill_id)
        except BaseException as exc:
            self.log.finish(drill_id, report, None, str(exc), target_time=when)
            raise
        self.log.finish(drill_id, report, rows, None)
        return report, rows

    def teardown(self, scratch: Scratch | None, drill_id: str | None) -> bool:
        """Remove the scratch cluster, if any; close the drill if it never finished."""
        if scratch is not None:
            scratch.remove(self.pitr.os_user())
        return drill_id is not None and self.log.close_unfinished(drill_id)
