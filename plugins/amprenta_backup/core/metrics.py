"""The spec's backup metrics over the catalog: success rate, size and duration, storage trend."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import utcnow

# A backup that finished well, even if retention has removed it since. VERIFIED counts: it is a
# COMPLETED backup that later passed verification (the spec's queries predate that status).
SUCCEEDED = "(status IN ('completed', 'verified') OR (status = 'deleted' AND error IS NULL))"

_SUCCESS_RATE = f"""
SELECT count(*) AS total, count(*) FILTER (WHERE {SUCCEEDED}) AS succeeded,
       count(*) FILTER (WHERE NOT {SUCCEEDED}) AS failed
FROM backup_records
WHERE created_at >= %(since)s AND created_at <= %(now)s AND status <> 'running' {{target}}
"""

_SIZE_DURATION = f"""
SELECT count(*) AS backups, avg(file_size_bytes)::float8 AS avg_size_bytes,
       avg(EXTRACT(EPOCH FROM (completed_at - started_at)))::float8 AS avg_duration_seconds
FROM backup_records
WHERE {SUCCEEDED} AND created_at >= %(since)s AND created_at <= %(now)s {{target}}
"""

_STORAGE_TREND = f"""
SELECT (created_at AT TIME ZONE 'UTC')::date AS backup_date, count(*) AS backups,
       coalesce(sum(file_size_bytes), 0) AS total_size
FROM backup_records
WHERE {SUCCEEDED} AND created_at >= %(since)s AND created_at <= %(now)s {{target}}
GROUP BY 1 ORDER BY 1 DESC
"""


def _query(catalog: Catalog, sql: str, days: int, now: datetime | None,
           target: str | None) -> list[dict[str, Any]]:
    end = now or utcnow()
    params = {"since": end - timedelta(days=days), "now": end, "target": target}
    with catalog.cursor() as cur:
        cur.execute(sql.format(target="AND target = %(target)s" if target else "").encode(),
                    params)
        return list(cur.fetchall())


def success_rate(catalog: Catalog, days: int = 30, now: datetime | None = None,
                 target: str | None = None) -> dict[str, Any]:
    """Share of finished backups created in the last ``days`` days that succeeded, in %."""
    row = _query(catalog, _SUCCESS_RATE, days, now, target)[0]
    total = int(row["total"])
    rate = round(int(row["succeeded"]) * 100.0 / total, 2) if total else None
    return {"days": days, "total": total, "succeeded": int(row["succeeded"]),
            "failed": int(row["failed"]), "success_rate": rate}


def size_duration(catalog: Catalog, days: int = 7, now: datetime | None = None,
                  target: str | None = None) -> dict[str, Any]:
    """Average stored size and duration of the successful backups of the last ``days`` days."""
    row = _query(catalog, _SIZE_DURATION, days, now, target)[0]
    return {"days": days, "backups": int(row["backups"]),
            "avg_size_bytes": row["avg_size_bytes"],
            "avg_duration_seconds": row["avg_duration_seconds"]}


def storage_trend(catalog: Catalog, days: int = 30, now: datetime | None = None,
                  target: str | None = None) -> list[dict[str, Any]]:
    """Bytes stored by successful backups per UTC day over the last ``days`` days, newest first."""
    rows = _query(catalog, _STORAGE_TREND, days, now, target)
    return [{"backup_date": r["backup_date"].isoformat(), "backups": int(r["backups"]),
             "total_size": int(r["total_size"])} for r in rows]
