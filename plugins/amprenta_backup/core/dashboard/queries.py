"""The dashboard's SQL over the catalog: one statement per panel, each a few index reads.

Targets come from a skip scan of ``backup_records_target_started`` (one index probe per
target, not a scan of every record), unioned with the configured ones.
"""

from __future__ import annotations

from amprenta_backup.core.metrics import SUCCEEDED

GOOD = "status IN ('completed', 'verified')"  # restorable now
STORED = "status IN ('completed', 'verified', 'corrupt')"  # bytes still in storage

TARGETS = """
WITH RECURSIVE seen(target) AS (
    (SELECT target FROM backup_records ORDER BY target LIMIT 1)
    UNION ALL
    SELECT (SELECT b.target FROM backup_records b WHERE b.target > s.target
            ORDER BY b.target LIMIT 1)
    FROM seen s WHERE s.target IS NOT NULL
)
SELECT target FROM seen WHERE target IS NOT NULL
UNION SELECT unnest(%(targets)s::text[])
"""

STATUS = f"""
WITH t AS ({TARGETS})
SELECT t.target,
    last.id AS last_id, last.status AS last_status, last.kind AS last_kind,
    last.started_at AS last_started_at, last.completed_at AS last_completed_at,
    last.file_size_bytes AS last_bytes, last.error AS last_error,
    last.dag_id AS last_dag_id, last.run_id AS last_run_id,
    good.id AS good_id, good.completed_at AS good_completed_at,
    good.file_size_bytes AS good_bytes,
    held.stored_bytes, bad.failures_total, n.backups, bad.corrupt,
    ver.backup_id AS verify_backup_id, ver.verified_at, ver.ok AS verify_ok,
    ver.detail AS verify_detail, ver.dag_id AS verify_dag_id, ver.run_id AS verify_run_id,
    drill.id AS drill_id, drill.started_at AS drill_started_at, drill.passed AS drill_passed,
    drill.rto_seconds AS drill_rto_seconds,
    drill.rto_objective_seconds AS drill_rto_objective_seconds, drill.error AS drill_error,
    drill.dag_id AS drill_dag_id, drill.run_id AS drill_run_id,
    held.oldest_base_at, rpo.value AS wal_rpo_seconds, rpo.status AS wal_rpo_status,
    rpo.as_of AS wal_rpo_as_of
FROM t
LEFT JOIN LATERAL (SELECT * FROM backup_records b WHERE b.target = t.target
                   ORDER BY b.started_at DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (SELECT id, completed_at, file_size_bytes FROM backup_records b
                   WHERE b.target = t.target AND {GOOD}
                   ORDER BY b.started_at DESC LIMIT 1) good ON true
LEFT JOIN LATERAL (  -- the held rows only (index backup_records_held), not years of deleted
    SELECT coalesce(sum(file_size_bytes), 0) AS stored_bytes,
           min(started_at) FILTER (WHERE kind = 'physical' AND {GOOD}) AS oldest_base_at
    FROM backup_records b WHERE b.target = t.target AND {STORED}) held ON true
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE status = 'failed') AS failures_total,
           count(*) FILTER (WHERE status = 'corrupt') AS corrupt
    FROM backup_records b WHERE b.target = t.target AND status IN ('failed', 'corrupt')) bad
    ON true
LEFT JOIN LATERAL (SELECT count(*) AS backups FROM backup_records b
                   WHERE b.target = t.target) n ON true
LEFT JOIN LATERAL (SELECT * FROM backup_verifications v WHERE v.target = t.target
                   ORDER BY v.verified_at DESC LIMIT 1) ver ON true
LEFT JOIN LATERAL (SELECT * FROM drill_runs d WHERE d.target = t.target
                   ORDER BY d.started_at DESC LIMIT 1) drill ON true
LEFT JOIN LATERAL (SELECT value, status, as_of FROM health_checks h
                   WHERE h.target = t.target AND h.name = 'wal_rpo'
                   ORDER BY h.as_of DESC LIMIT 1) rpo ON true
ORDER BY t.target
"""

SUCCESS_BY_TARGET = f"""
SELECT target, count(*) AS total, count(*) FILTER (WHERE {SUCCEEDED}) AS succeeded
FROM backup_records
WHERE created_at >= %(since)s AND created_at <= %(now)s AND status <> 'running'
GROUP BY target ORDER BY target
"""

def _held(table: str, size: str, done: str, held: str, deleted: str) -> str:
    """Bytes ``table`` held at the end of each UTC day from ``since_day`` to ``day``, per
    target: + at a completion, - at a deletion (both before the window count on its first
    day), summed by a window function. Reads the rows still held and those deleted since the
    window began, never the years of rows deleted before it."""
    return f"""
WITH kept AS MATERIALIZED (
    SELECT target, {size} AS size, {done} AS done, deleted_at AS gone FROM {table}
    WHERE {done} IS NOT NULL AND {size} IS NOT NULL AND {done} < %(end)s
      AND ({held} OR ({deleted} AND deleted_at >= %(start)s))
), deltas AS (
    SELECT target, greatest((done AT TIME ZONE 'UTC')::date, %(since_day)s) AS day, size
    FROM kept
    UNION ALL
    SELECT target, greatest((gone AT TIME ZONE 'UTC')::date, %(since_day)s), -size FROM kept
    WHERE gone < %(end)s
), per_day AS (
    SELECT target, day, sum(size) AS delta FROM deltas GROUP BY 1, 2
)
SELECT t.target, d.day::date AS day,
       (sum(coalesce(p.delta, 0)) OVER (PARTITION BY t.target ORDER BY d.day))::bigint AS held
FROM (SELECT DISTINCT target FROM per_day) t
CROSS JOIN generate_series(%(since_day)s::date, %(day)s::date, interval '1 day') d(day)
LEFT JOIN per_day p ON p.target = t.target AND p.day = d.day::date
ORDER BY 1, 2
"""


STORAGE = _held("backup_records", "file_size_bytes", "completed_at", STORED,
                "status = 'deleted' AND error IS NULL")
COPY_STORAGE = _held("backup_copies", "stored_bytes", "copied_at",
                     "status IN ('verified', 'corrupt')", "status = 'deleted'")

TREND = f"""
SELECT target, id, started_at, file_size_bytes AS stored_bytes,
       EXTRACT(EPOCH FROM (completed_at - started_at))::float8 AS duration_seconds
FROM backup_records
WHERE {SUCCEEDED} AND started_at >= %(since)s AND started_at <= %(now)s
  AND completed_at IS NOT NULL {{target}}
ORDER BY started_at
"""

# the page's charts: one point per UTC day or week (``bucket``), however many backups
TREND_POINTS = f"""
SELECT date_trunc(%(bucket)s, started_at AT TIME ZONE 'UTC')::date AS day,
       avg(EXTRACT(EPOCH FROM (completed_at - started_at)))::float8 AS duration_seconds,
       sum(file_size_bytes)::float8 AS stored_bytes
FROM backup_records
WHERE {SUCCEEDED} AND started_at >= %(since)s AND started_at <= %(now)s
  AND completed_at IS NOT NULL {{target}}
GROUP BY 1 ORDER BY 1
"""

RTO_POINTS = """
SELECT date_trunc(%(bucket)s, started_at AT TIME ZONE 'UTC')::date AS day,
       max(rto_seconds) AS rto_seconds,
       min(coalesce(rto_objective_seconds, %(objective)s)) AS rto_objective_seconds,
       count(*) AS drills, count(*) FILTER (WHERE NOT passed) AS failed
FROM drill_runs
WHERE started_at >= %(since)s AND started_at <= %(now)s AND rto_seconds IS NOT NULL {target}
GROUP BY 1 ORDER BY 1
"""

RTO = """
SELECT target, id, started_at, rto_seconds, rto_objective_seconds, passed, dag_id, run_id
FROM drill_runs
WHERE started_at >= %(since)s AND started_at <= %(now)s AND rto_seconds IS NOT NULL {target}
ORDER BY started_at
"""

ALERTS = """
SELECT (as_of AT TIME ZONE 'UTC')::date AS day, status AS severity, count(*) AS alerts
FROM health_checks
WHERE status <> 'ok' AND as_of >= %(since)s AND as_of <= %(now)s {target}
GROUP BY 1, 2 ORDER BY 1, 2
"""

LATEST_HEALTH = """
SELECT as_of, run_id, target, name, status, detail, hint, value
FROM health_checks
WHERE as_of = (SELECT max(as_of) FROM health_checks)
ORDER BY CASE status WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, target, name
"""

CORRUPT = """
SELECT id, target, started_at, error, dag_id, run_id FROM backup_records
WHERE status = 'corrupt' ORDER BY started_at DESC LIMIT 100
"""

VERIFICATIONS = """
SELECT id, backup_id, target, verified_at, ok, detail, expected_sha256, actual_sha256,
       stored_bytes, raw_bytes, seconds, dag_id, run_id
FROM backup_verifications WHERE TRUE {target}
ORDER BY verified_at DESC LIMIT %(limit)s
"""

DRILLS = """
SELECT id, target, backup_id, strategy, started_at, finished_at, restore_seconds,
       checks_seconds, rto_seconds, rto_objective_seconds, passed, error, report_uri,
       dag_id, run_id
FROM drill_runs WHERE TRUE {target}
ORDER BY started_at DESC LIMIT %(limit)s
"""
