-- The catalog schema as amprenta-backup created it before versioned migrations (commit
-- 7fdde5e, 2026-12-01): the DDL of core/catalog.py, core/verify.py, core/drill/record.py,
-- core/pitr/drill.py and core/recovery/report.py, in that order. Frozen: never edit it;
-- tests/integration/test_catalog_migrations.py upgrades a catalog made with it.
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
-- retention's audit trail: who deleted a backup, when and why (added to older catalogs)
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'backup_records'::regclass
                   AND attname = 'deleted_at' AND NOT attisdropped) THEN
        ALTER TABLE backup_records ADD COLUMN IF NOT EXISTS deleted_at timestamptz,
            ADD COLUMN IF NOT EXISTS deleted_by text, ADD COLUMN IF NOT EXISTS delete_reason text;
    END IF;
END $$;
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
