"""The catalog's schema, in one place: an ordered list of versioned steps.

Each :class:`Step` runs once per catalog database, in order, in one transaction under the
advisory lock :data:`SCHEMA_LOCK`; the table ``amprenta_schema_version`` records the steps
applied. A catalog made before the steps were versioned (its tables made with
``CREATE ... IF NOT EXISTS``, no version table) is upgraded in place by the same steps, so a
deployment of a new release only has to start: the first process that touches the catalog
brings it up to date. Steps only add (tables, columns, indexes): a catalog a newer release
upgraded still serves the workers of an older one during a rolling upgrade.

To change the schema, append a step; never edit one that was released.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

log = logging.getLogger(__name__)

SCHEMA_LOCK = 0x616D_7072  # pg_advisory_xact_lock key serialising DDL of concurrent tasks
VERSION_TABLE = "amprenta_schema_version"

_TABLES = """
CREATE TABLE IF NOT EXISTS backup_records (
    id               text PRIMARY KEY,
    target           text NOT NULL,
    database_name    text NOT NULL DEFAULT '',
    kind             text NOT NULL DEFAULT 'logical',
    status           text NOT NULL
        CHECK (status IN ('running','completed','failed','verified','corrupt','deleted')),
    location         text NOT NULL,
    file_size_bytes  bigint,
    raw_size_bytes   bigint,
    sha256           text,
    error            text,
    started_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    dag_id           text,
    run_id           text,
    logical_date     timestamptz,
    try_number       integer,
    manifest         jsonb
);
CREATE INDEX IF NOT EXISTS backup_records_target_started
    ON backup_records (target, started_at DESC);
CREATE INDEX IF NOT EXISTS backup_records_status ON backup_records (status);
CREATE TABLE IF NOT EXISTS health_checks (
    id          bigserial PRIMARY KEY,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    as_of       timestamptz NOT NULL,
    run_id      text,
    target      text,
    name        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('ok','warning','critical')),
    detail      text NOT NULL,
    hint        text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS health_checks_as_of ON health_checks (as_of DESC);
CREATE TABLE IF NOT EXISTS admin_notifications (
    id                 bigserial PRIMARY KEY,
    created_at         timestamptz NOT NULL DEFAULT now(),
    title              text NOT NULL,
    message            text NOT NULL,
    notification_type  text NOT NULL CHECK (notification_type IN ('info','warning','critical')),
    read_at            timestamptz
);

CREATE TABLE IF NOT EXISTS backup_verifications (
    id               bigserial PRIMARY KEY,
    backup_id        text NOT NULL,
    target           text NOT NULL,
    verified_at      timestamptz NOT NULL DEFAULT now(),
    ok               boolean NOT NULL,
    detail           text,
    checked          jsonb NOT NULL,
    expected_sha256  text,
    actual_sha256    text,
    stored_bytes     bigint,
    raw_bytes        bigint,
    seconds          double precision NOT NULL,
    dag_id           text,
    run_id           text
);
CREATE INDEX IF NOT EXISTS backup_verifications_backup
    ON backup_verifications (backup_id, verified_at DESC);

CREATE TABLE IF NOT EXISTS drill_runs (
    id                     text PRIMARY KEY,
    target                 text NOT NULL,
    backup_id              text,
    backup_location        text,
    strategy               text NOT NULL,
    window_start           timestamptz,
    window_end             timestamptz NOT NULL,
    drill_conn_id          text NOT NULL,
    drill_server           text NOT NULL DEFAULT '',
    scratch_database       text NOT NULL,
    scratch_created        boolean NOT NULL DEFAULT false,
    scratch_dropped_at     timestamptz,
    started_at             timestamptz NOT NULL,
    restore_started_at     timestamptz,
    restore_finished_at    timestamptz,
    checks_finished_at     timestamptz,
    finished_at            timestamptz,
    restore_seconds        double precision,
    checks_seconds         double precision,
    rto_seconds            double precision,
    rto_objective_seconds  double precision NOT NULL,
    passed                 boolean,
    checks                 jsonb NOT NULL DEFAULT '[]'::jsonb,
    error                  text,
    report_uri             text,
    dag_id                 text,
    run_id                 text,
    logical_date           timestamptz,
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS drill_runs_target_started ON drill_runs (target, started_at DESC);
CREATE INDEX IF NOT EXISTS drill_runs_backup ON drill_runs (backup_id);

CREATE TABLE IF NOT EXISTS pitr_drills (
    id                    text PRIMARY KEY,
    target                text NOT NULL,
    status                text NOT NULL CHECK (status IN ('running', 'passed', 'failed')),
    started_at            timestamptz NOT NULL DEFAULT now(),
    finished_at           timestamptz,
    backup_id             text,
    target_time           timestamptz,
    recovered_to          timestamptz,
    achieved_rpo_seconds  double precision,
    rto_seconds           double precision,
    rows_checked          jsonb,
    error                 text,
    dag_id                text,
    run_id                text,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS pitr_drills_target_started ON pitr_drills (target, started_at DESC);

CREATE TABLE IF NOT EXISTS recovery_runs (
    id              text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('recover', 'dr_drill')),
    server          text NOT NULL,
    server_version  text NOT NULL DEFAULT '',
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    rto_seconds     double precision,
    catalog_seconds double precision,
    passed          boolean,
    databases       jsonb NOT NULL DEFAULT '[]'::jsonb,
    error           text,
    report_uri      text,
    dag_id          text,
    run_id          text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS recovery_runs_started ON recovery_runs (kind, started_at DESC);
"""

# retention's audit trail: who deleted a backup, when and why
_DELETED = """
ALTER TABLE backup_records ADD COLUMN IF NOT EXISTS deleted_at timestamptz,
    ADD COLUMN IF NOT EXISTS deleted_by text, ADD COLUMN IF NOT EXISTS delete_reason text;
"""

_HEARTBEAT = """
ALTER TABLE backup_records ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz;
"""

# the second copy (core/copy/): one row per backup per copy storage
_COPIES = """
CREATE TABLE IF NOT EXISTS backup_copies (
    backup_id      text NOT NULL,
    storage        text NOT NULL,
    target         text NOT NULL,
    location       text NOT NULL,
    status         text NOT NULL
        CHECK (status IN ('copying', 'verified', 'failed', 'corrupt', 'deleted')),
    stored_bytes   bigint,
    sha256         text,
    objects        integer,
    error          text,
    started_at     timestamptz NOT NULL DEFAULT now(),
    copied_at      timestamptz,
    verified_at    timestamptz,
    deleted_at     timestamptz,
    delete_reason  text,
    seconds        double precision,
    dag_id         text,
    run_id         text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (backup_id, storage)
);
CREATE INDEX IF NOT EXISTS backup_copies_target ON backup_copies (storage, target, status);
"""

# the dashboard: a check's measured figure, and indexes for its per-target and per-day queries
_DASHBOARD = """
ALTER TABLE health_checks ADD COLUMN IF NOT EXISTS value double precision;
CREATE INDEX IF NOT EXISTS health_checks_target_name ON health_checks (target, name, as_of DESC);
CREATE INDEX IF NOT EXISTS backup_verifications_target
    ON backup_verifications (target, verified_at DESC);
CREATE INDEX IF NOT EXISTS backup_records_created ON backup_records (created_at);
"""


# project exports (core/export/store.py): one row per export, retention marks them deleted
_EXPORTS = """
CREATE TABLE IF NOT EXISTS exports (
    id             text PRIMARY KEY,
    status         text NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'deleted')),
    source         text NOT NULL,
    database_name  text NOT NULL,
    project_ids    jsonb NOT NULL,
    include_data   boolean NOT NULL,
    include_files  boolean NOT NULL,
    location       text NOT NULL,
    started_at     timestamptz NOT NULL,
    completed_at   timestamptz,
    size_bytes     bigint,
    sha256         text,
    row_count      bigint,
    table_count    integer,
    file_count     integer,
    error          text,
    created_by     text,
    dag_id         text,
    run_id         text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS exports_started ON exports (started_at DESC);
"""

# the DAGs whose last alert was a failure, so that their next good run says "resolved"
_ALERT_STATE = """
CREATE TABLE IF NOT EXISTS alert_state (
    id          text PRIMARY KEY,
    run_id      text,
    title       text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
"""

# replay plans (core/restore/replaybook.py): the writer DAG runs a restore to a point took away
_REPLAY_PLANS = """
CREATE TABLE IF NOT EXISTS replay_plans (
    id             text PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('restore', 'pitr_restore', 'pitr_drill')),
    target         text NOT NULL,
    database_name  text NOT NULL,
    point          timestamptz NOT NULL,
    point_source   text NOT NULL,
    writers        jsonb NOT NULL,
    runs           jsonb NOT NULL,
    run_count      integer NOT NULL,
    known          boolean NOT NULL,
    made_at        timestamptz NOT NULL,
    replayed_at    timestamptz,
    replayed       jsonb,
    dag_id         text,
    run_id         text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS replay_plans_target_made ON replay_plans (target, made_at DESC);
"""

# the dashboard at scale (years of daily backups): the per-target totals read only the rows
# still held (or failed), the storage chart only what was held or deleted inside its window
_DASHBOARD_SCALE = """
CREATE INDEX IF NOT EXISTS backup_records_held ON backup_records (target, started_at)
    INCLUDE (file_size_bytes, completed_at, kind, status)
    WHERE status IN ('completed', 'verified', 'corrupt');
CREATE INDEX IF NOT EXISTS backup_records_bad ON backup_records (target, status)
    WHERE status IN ('failed', 'corrupt');
CREATE INDEX IF NOT EXISTS backup_records_started ON backup_records (started_at);
CREATE INDEX IF NOT EXISTS backup_records_deleted ON backup_records (deleted_at)
    WHERE status = 'deleted';
CREATE INDEX IF NOT EXISTS backup_copies_held ON backup_copies (target)
    INCLUDE (stored_bytes, copied_at) WHERE status IN ('verified', 'corrupt');
CREATE INDEX IF NOT EXISTS backup_copies_deleted ON backup_copies (deleted_at)
    WHERE status = 'deleted';
"""


@dataclass(frozen=True)
class Step:
    """One versioned change of the catalog schema.

    :param version: its number, one more than the step before
    :param summary: what it changes, recorded with it
    :param sql: the statements; safe on a catalog made before versioning (``IF NOT EXISTS``)
    """

    version: int
    summary: str
    sql: str


STEPS: tuple[Step, ...] = (
    Step(1, "backup_records, health_checks, admin_notifications, backup_verifications, "
            "drill_runs, pitr_drills, recovery_runs", _TABLES),
    Step(2, "backup_records: deleted_at, deleted_by, delete_reason (retention audit trail)",
         _DELETED),
    Step(3, "backup_records: heartbeat_at (the last sign of life of a RUNNING backup, "
            "core/records/heartbeat.py)", _HEARTBEAT),
    Step(4, "backup_copies: each backup's second copy (location, status, bytes, sha256, "
            "copied and verified times; core/copy/)", _COPIES),
    Step(5, "exports: project exports (core/export/store.py)", _EXPORTS),
    Step(6, "health_checks.value (a check's figure, e.g. wal_rpo seconds); indexes for the "
            "dashboard (core/dashboard)", _DASHBOARD),
    Step(7, "alert_state: the DAGs whose last alert was a failure (a good run then sends "
            "'resolved'; core/notifications.py)", _ALERT_STATE),
    Step(8, "replay_plans: the writer DAG runs a restore to a point took away, and when they "
            "were re-run (core/restore/replaybook.py)", _REPLAY_PLANS),
    Step(9, "indexes for the dashboard over years of records: held and failed backups per "
            "target, start and deletion times, held and deleted copies", _DASHBOARD_SCALE),
)
CURRENT = STEPS[-1].version


def schema_version(db: psycopg.Connection[Any]) -> int:
    """The version of the catalog in ``db``: 0 before any versioned step."""
    with db.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,))
        row = cur.fetchone()
        if not row or not row[0]:
            return 0
        cur.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}")
        row = cur.fetchone()
        return int(row[0]) if row else 0


def migrate(db: psycopg.Connection[Any]) -> tuple[int, int]:
    """Apply the steps ``db``'s catalog lacks, in its open transaction (commit to keep them);
    returns ``(version found, version now)``. Without the lock when already current."""
    found = schema_version(db)
    if found >= CURRENT:
        return found, found
    db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    db.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer PRIMARY KEY, "
               "summary text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    found = schema_version(db)  # again: another process may have migrated meanwhile
    for step in STEPS:
        if step.version > found:
            db.execute(step.sql)
            db.execute(f"INSERT INTO {VERSION_TABLE} (version, summary) VALUES (%s, %s)",
                       (step.version, step.summary))
    if found < CURRENT:
        log.info("catalog schema upgraded from version %d to %d", found, CURRENT)
    return found, max(found, CURRENT)
