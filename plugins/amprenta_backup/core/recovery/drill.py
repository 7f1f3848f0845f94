"""The DR drill: the whole-service recovery rehearsed into a throwaway empty server, on a
schedule, with the measured RTO kept in ``drill_runs`` (and ``recovery_runs``).

The server is a new data directory on the worker (``initdb`` of the source's major, or of the
next major for an upgrade rehearsal), or the server of ``BACKUP_DR_DRILL_CONN_ID``; either
way it is emptied again afterwards (the DAG's teardown task).
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.drill import record as drills
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.identifiers import SYSTEM_DATABASES
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo, major
from amprenta_backup.core.recovery.report import RecoveryReport
from amprenta_backup.core.settings import DrDrillSettings

SCRATCH_CONN_ID = "amprenta_dr_drill_scratch"
DRILL_CATALOG_DATABASE = "amprenta_dr_drill_catalog"  # never the name of a catalog in use
SERVICE_TARGET = "*"  # a drill_runs row of the whole service, not of one target


def source_major(index: Catalog) -> int:
    """The newest major among the servers the restorable logical backups came from."""
    majors = [major(r.manifest.server_version) for r in index.find(
        statuses=(Status.VERIFIED, Status.COMPLETED)) if r.kind == "logical" and r.manifest]
    if not majors:
        raise ConfigError("storage holds no completed logical backup to rehearse a recovery "
                          "of; run daily_backup first")
    return max(majors)


def drill_record(report: RecoveryReport, conn_id: str, objective: float) -> drills.DrillRecord:
    """The ``drill_runs`` row of a DR drill: the whole service as one drill."""
    record = drills.DrillRecord(
        drill_id=report.recovery_id, target=SERVICE_TARGET, strategy="dr_drill",
        window_end=report.started_at, drill_conn_id=conn_id,
        scratch_database=", ".join(d.database for d in report.databases)[:2000] or "-",
        rto_objective_seconds=objective, started_at=report.started_at,
        backup_location=report.report_uri, drill_server=report.server,
        scratch_created=bool(report.databases), finished_at=report.finished_at,
        restore_seconds=report.rto_seconds, rto_seconds=report.rto_seconds,
        error=report.error, report_uri=report.report_uri, dag_id=report.dag_id,
        run_id=report.run_id)
    for outcome in report.databases:
        for check in outcome.checks:
            record.checks.append(type(check)(f"{outcome.database}:{check.name}", check.status,
                                             check.detail, check.hint, outcome.target))
        if outcome.error:
            record.error = record.error or f"{outcome.database}: {outcome.error}"
    record.decide()
    if record.passed and (report.rto_seconds or 0) > objective:
        record.passed = False
        record.error = f"RTO {report.rto_seconds:.1f} s is over the objective {objective:g} s"
    return record


def save_drill(catalog: Catalog, report: RecoveryReport, conn_id: str, objective: float) -> None:
    """Keep the drill in ``drill_runs`` beside the monthly restore drills."""
    drills.save(catalog, drill_record(report, conn_id, objective))


def drop_databases(conn: PgConnInfo, names: list[str]) -> list[str]:
    """Drop the databases a drill created on a drill server (never a system one)."""
    dropped = []
    with psycopg.connect(**conn.with_database("postgres").connect_kwargs(),
                         autocommit=True) as db:
        for name in names:
            if name in SYSTEM_DATABASES:
                continue
            db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
            dropped.append(name)
    return dropped


__all__ = ["DRILL_CATALOG_DATABASE", "DrDrillSettings", "SCRATCH_CONN_ID", "drill_record",
           "drop_databases", "save_drill", "source_major"]
