"""The recovery report: per database what was restored and how it checked, and the whole RTO;
JSON and Markdown beside the backups in storage, and a ``recovery_runs`` row in the catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.health import CheckResult, Level
from amprenta_backup.core.storage.base import Storage

REPORT_ROOT = "_recovery"
KINDS = ("recover", "dr_drill")
_MARKS = {Level.OK: "PASS", Level.WARNING: "WARN", Level.CRITICAL: "FAIL"}


@dataclass
class DatabaseOutcome:
    """One database of a recovery: the backup restored into it, its checks, its time.

    :param seconds: from its restore's start to its last check
    :param properties: database properties set by the restore (owner, settings ...)
    :param error: why it could not be restored, if it was not
    """

    target: str
    database: str
    backup_id: str
    seconds: float = 0.0
    rows: int = 0
    checks: list[CheckResult] = field(default_factory=list)
    properties: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and \
            all(c.status != Level.CRITICAL for c in self.checks)

    def problems(self) -> list[str]:
        found = [self.error] if self.error else []
        return found + [f"{c.name}: {c.detail}" for c in self.checks if c.status == Level.CRITICAL]

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "database": self.database, "backup_id": self.backup_id,
                "seconds": self.seconds, "rows": self.rows, "ok": self.ok,
                "checks": [c.to_dict() for c in self.checks], "properties": self.properties,
                "error": self.error}


@dataclass
class RecoveryReport:
    """A whole-service recovery (``recover``) or its rehearsal (``dr_drill``).

    :param rto_seconds: from the start of the recovery to the last database checked
    :param performed: False for a dry run
    """

    recovery_id: str
    kind: str
    server: str
    started_at: datetime
    server_version: str = ""
    performed: bool = True
    finished_at: datetime | None = None
    rto_seconds: float | None = None
    catalog_seconds: float | None = None
    catalog: str = ""
    rebuilt_records: int = 0
    globals: list[str] = field(default_factory=list)
    databases: list[DatabaseOutcome] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    report_uri: str | None = None
    dag_id: str | None = None
    run_id: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.databases) and all(d.ok for d in self.databases)

    def problems(self) -> list[str]:
        found = [self.error] if self.error else []
        return found + [f"{d.database}: {p}" for d in self.databases for p in d.problems()]

    @property
    def summary(self) -> str:
        if not self.performed:
            return f"dry run of recovery {self.recovery_id}: nothing was touched"
        rows = sum(d.rows for d in self.databases)
        head = (f"{'recovery' if self.kind == 'recover' else 'DR drill'} {self.recovery_id} onto "
                f"{self.server}: {len(self.databases)} databases, {rows} rows, RTO "
                f"{self.rto_seconds or 0:.1f} s")
        if self.passed:
            return f"{head}, every check passed"
        return f"{head}, FAILED: {'; '.join(self.problems()) or 'nothing was recovered'}"

    def to_dict(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in (
            "recovery_id", "kind", "server", "server_version", "performed", "rto_seconds",
            "catalog_seconds", "catalog", "rebuilt_records", "globals", "plan", "error",
            "report_uri", "dag_id", "run_id")}
        data.update(passed=self.passed, summary=self.summary,
                    started_at=self.started_at.isoformat(),
                    finished_at=self.finished_at.isoformat() if self.finished_at else None,
                    databases=[d.to_dict() for d in self.databases])
        return data


def report_keys(prefix: str, recovery_id: str) -> tuple[str, str]:
    """The JSON and Markdown keys of a recovery's report: ``{prefix}/_recovery/{id}/``."""
    folder = "/".join(p for p in (prefix.strip("/"), REPORT_ROOT, recovery_id) if p)
    return f"{folder}/report.json", f"{folder}/report.md"


def render_markdown(report: RecoveryReport) -> str:
    """The page a person reads after a disaster: the verdict, the RTO, each database."""
    verdict = "PASSED" if report.passed else "FAILED"
    title = "Recovery" if report.kind == "recover" else "DR drill"
    lines = [f"# {title} {report.recovery_id}: {verdict}", "",
             f"- Server: {report.server} (PostgreSQL {report.server_version or '?'})",
             f"- Started: {report.started_at:%Y-%m-%d %H:%M:%S} UTC",
             f"- Whole-service RTO: {report.rto_seconds or 0:.1f} s (catalog "
             f"{report.catalog_seconds or 0:.1f} s)",
             f"- Catalog: {report.catalog} ({report.rebuilt_records} records rebuilt)",
             f"- Airflow run: {report.dag_id or '-'} / {report.run_id or '-'}"]
    lines += [f"- Globals: {line}" for line in report.globals]
    if report.error:
        lines += ["", f"**Error:** {report.error}"]
    lines += ["", "| Database | Backup | Rows | Seconds | Properties | Checks |",
              "|---|---|---|---|---|---|"]
    for d in report.databases:
        checks = ", ".join(f"{_MARKS[c.status]} {c.name}" for c in d.checks) or \
            f"FAIL {_cell(d.error or 'not checked')}"
        lines.append(f"| {_cell(d.database)} | {d.backup_id} ({_cell(d.target)}) | {d.rows} | "
                     f"{d.seconds:.1f} | {_cell(', '.join(d.properties) or '-')} | {checks} |")
    problems = report.problems()
    if problems:
        lines += ["", "## Problems", ""] + [f"- {_cell(p)}" for p in problems]
    return "\n".join(lines) + "\n"


def publish(storage: Storage, prefix: str, report: RecoveryReport) -> str:
    """Write both report objects; returns (and sets) the URI of the Markdown one."""
    json_key, md_key = report_keys(prefix, report.recovery_id)
    report.report_uri = storage.uri(md_key)
    storage.put_bytes(json_key, json.dumps(report.to_dict(), indent=2, sort_keys=True,
                                           default=str).encode())
    storage.put_bytes(md_key, render_markdown(report).encode())
    return report.report_uri


def save(catalog: Catalog, report: RecoveryReport) -> None:
    """Insert or replace the ``recovery_runs`` row of ``report``."""
    row = {"id": report.recovery_id, "kind": report.kind, "server": report.server,
           "server_version": report.server_version, "started_at": report.started_at,
           "finished_at": report.finished_at, "rto_seconds": report.rto_seconds,
           "catalog_seconds": report.catalog_seconds, "passed": report.passed,
           "databases": json.dumps([d.to_dict() for d in report.databases], default=str),
           "error": report.error, "report_uri": report.report_uri, "dag_id": report.dag_id,
           "run_id": report.run_id}
    catalog.upsert("recovery_runs", row)


def last_rto(catalog: Catalog, kind: str = "dr_drill") -> dict[str, Any] | None:
    """The newest passed run of ``kind``: id, RTO, databases, when (None if there is none)."""
    with catalog.cursor() as cur:
        cur.execute("SELECT id, rto_seconds, jsonb_array_length(databases) AS databases, "
                    "started_at, report_uri FROM recovery_runs WHERE kind = %s AND passed "
                    "ORDER BY started_at DESC LIMIT 1", (kind,))
        row = cur.fetchone()
    return dict(row) if row else None


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
