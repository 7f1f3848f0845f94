"""A synthetic catalog history for dashboard tests and benchmarks: daily backups of many
targets over years, with failures, retention deletes, a second copy of each good backup (kept
three times as long), weekly verifies, monthly drills and daily health results.
Deterministic (no randomness): the same arguments, the same rows.

The rows are plain dicts, so a test can compute the figures it expects from them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from amprenta_backup.core.catalog import Catalog

_RECORDS = ("id", "target", "database_name", "kind", "status", "location", "file_size_bytes",
            "raw_size_bytes", "sha256", "error", "started_at", "completed_at", "created_at",
            "dag_id", "run_id", "deleted_at")
_VERIFY = ("backup_id", "target", "verified_at", "ok", "detail", "checked", "seconds",
           "dag_id", "run_id")
_DRILLS = ("id", "target", "backup_id", "strategy", "window_end", "drill_conn_id",
           "scratch_database", "started_at", "finished_at", "rto_seconds",
           "rto_objective_seconds", "passed", "error", "dag_id", "run_id")
_HEALTH = ("as_of", "run_id", "target", "name", "status", "detail", "value")
_COPIES = ("backup_id", "storage", "target", "location", "status", "stored_bytes", "sha256",
           "objects", "started_at", "copied_at", "verified_at", "deleted_at", "seconds",
           "dag_id", "run_id")
COPY_STORAGE = "copy"  # the copy storage's name in ``backup_copies.storage``


@dataclass
class History:
    """Rows for ``backup_records``, ``backup_verifications``, ``drill_runs``, ``health_checks``
    and ``backup_copies``."""

    records: list[dict[str, Any]] = field(default_factory=list)
    verifications: list[dict[str, Any]] = field(default_factory=list)
    drills: list[dict[str, Any]] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)
    copies: list[dict[str, Any]] = field(default_factory=list)


def _record(target: str, day: int, start: datetime, keep_days: int, now: datetime,
            failed: bool) -> dict[str, Any]:
    backup_id = f"{start:%Y%m%dT%H%M%SZ}-{hashlib.sha256(target.encode()).hexdigest()[:8]}"
    size = 10_000_000 + day * 5_000 + (len(target) * 1_000)
    duration = timedelta(seconds=60 + (day % 45))
    deleted = start + timedelta(days=keep_days)
    status = "failed" if failed else ("deleted" if deleted <= now else "completed")
    return {"id": backup_id, "target": target, "database_name": target, "kind": "logical",
            "status": status, "location": f"s3://bench/database/{target}/{backup_id}",
            "file_size_bytes": None if failed else size,
            "raw_size_bytes": None if failed else size * 4,
            "sha256": None if failed else hashlib.sha256(backup_id.encode()).hexdigest(),
            "error": "dump: pg_dump exited 1 (connection refused)" if failed else None,
            "started_at": start, "completed_at": start + duration, "created_at": start,
            "dag_id": "daily_backup", "run_id": f"scheduled__{start:%Y-%m-%dT%H:%M:%S}",
            "deleted_at": deleted if status == "deleted" else None}


def make_history(targets: int, days: int, now: datetime, keep_days: int = 30,
                 fail_every: int = 23) -> History:
    """``targets`` targets (``db000`` ...) with one backup a day for ``days`` days up to
    ``now``; every ``fail_every``-th backup fails; backups older than ``keep_days`` are
    deleted; a verify every 7th day, a drill every 30th, a health result every day."""
    history = History()
    first = (now - timedelta(days=days)).replace(hour=1, minute=0, second=0, microsecond=0)
    for t in range(targets):
        name = f"db{t:03d}"
        for day in range(days):
            start = first + timedelta(days=day, minutes=t)
            record = _record(name, day, start, keep_days, now, (t + day) % fail_every == 0)
            history.records.append(record)
            _side_rows(history, record, day, start)
            if record["status"] != "failed":
                history.copies.append(_copy(record, timedelta(days=3 * keep_days), now))
    return history


def _copy(record: dict[str, Any], keep: timedelta, now: datetime) -> dict[str, Any]:
    copied = record["completed_at"] + timedelta(minutes=10)
    deleted = record["started_at"] + keep
    return {"backup_id": record["id"], "storage": COPY_STORAGE, "target": record["target"],
            "location": record["location"].replace("s3://bench/", "s3://bench-copy/"),
            "status": "deleted" if deleted <= now else "verified",
            "stored_bytes": record["file_size_bytes"], "sha256": record["sha256"],
            "objects": 2, "started_at": record["completed_at"], "copied_at": copied,
            "verified_at": copied, "deleted_at": deleted if deleted <= now else None,
            "seconds": 30.0, "dag_id": "daily_backup", "run_id": record["run_id"]}


def _side_rows(history: History, record: dict[str, Any], day: int, start: datetime) -> None:
    name, done = record["target"], record["completed_at"]
    if record["status"] != "failed" and day % 7 == 0:
        history.verifications.append({
            "backup_id": record["id"], "target": name, "verified_at": done + timedelta(hours=1),
            "ok": True, "detail": "sha256 and archive readable", "checked": json.dumps([]),
            "seconds": 12.5, "dag_id": "weekly_verify", "run_id": f"v_{record['id']}"})
    if record["status"] != "failed" and day % 30 == 0:
        rto = 300.0 + day * 0.5
        history.drills.append({
            "id": f"drill-{record['id']}", "target": name, "backup_id": record["id"],
            "strategy": "latest", "window_end": done, "drill_conn_id": "drill",
            "scratch_database": f"drill_{day}", "started_at": done + timedelta(hours=2),
            "finished_at": done + timedelta(hours=2, seconds=rto), "rto_seconds": rto,
            "rto_objective_seconds": 14400.0, "passed": True, "error": None,
            "dag_id": "monthly_restore_drill", "run_id": f"d_{record['id']}"})
    status = "warning" if record["status"] == "failed" else "ok"
    history.health.append({
        "as_of": start + timedelta(hours=5), "run_id": f"h_{start:%Y%m%d}", "target": name,
        "name": "recent_failures", "status": status, "detail": "synthetic", "value": None})


def load_history(catalog: Catalog, history: History) -> None:
    """COPY every row into the catalog (its tables made first), then VACUUM ANALYZE them as
    autovacuum would have done over the years the history spans."""
    with catalog.cursor() as cur:
        for table, columns, rows in (
                ("backup_records", _RECORDS, history.records),
                ("backup_verifications", _VERIFY, history.verifications),
                ("drill_runs", _DRILLS, history.drills),
                ("health_checks", _HEALTH, history.health),
                ("backup_copies", _COPIES, history.copies)):
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN".encode()) as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
    with catalog.cursor() as cur:
        cur.connection.autocommit = True  # VACUUM runs outside a transaction block
        try:
            cur.execute("VACUUM ANALYZE backup_records, backup_verifications, drill_runs, "
                        "health_checks, backup_copies")
        finally:
            cur.connection.autocommit = False
