"""The drill report: JSON for machines and Markdown for auditors, stored beside the backup."""

from __future__ import annotations

import json

from amprenta_backup.core.drill.record import DrillRecord
from amprenta_backup.core.health import Level
from amprenta_backup.core.storage.base import Storage

REPORT_STEM = "drill-"
_MARKS = {Level.OK: "PASS", Level.WARNING: "WARN", Level.CRITICAL: "FAIL"}


def report_keys(folder: str, drill_id: str) -> tuple[str, str]:
    """The JSON and Markdown keys of a drill's report in the backup's folder."""
    stem = f"{folder.rstrip('/')}/{REPORT_STEM}{drill_id}"
    return f"{stem}.json", f"{stem}.md"


def render_json(record: DrillRecord) -> bytes:
    return json.dumps(record.to_dict(), indent=2, sort_keys=True, default=str).encode()


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if hasattr(value, "strftime") else "-"


def render_markdown(record: DrillRecord) -> str:
    """A page a person can read: the verdict, the facts, every check, the RTO."""
    verdict = {True: "PASSED", False: "FAILED", None: "DID NOT FINISH"}[record.passed]
    rto = ("not measured" if record.rto_seconds is None else
           f"{record.rto_seconds:.1f} s (restore {record.restore_seconds or 0:.1f} s + checks "
           f"{record.checks_seconds or 0:.1f} s)")
    within = "" if record.rto_seconds is None else (
        " - within the objective" if record.rto_seconds <= record.rto_objective_seconds
        else " - OVER the objective")
    window = (f"started before {_when(record.window_end)}" if record.window_start is None
              else f"started from {_when(record.window_start)} to {_when(record.window_end)}")
    facts = [
        ("Target", record.target), ("Backup", record.backup_id or "none picked"),
        ("Backup location", record.backup_location or "-"),
        ("Picked", f"{record.strategy} backup {window}"),
        ("Restored into", f"{record.scratch_database} on {record.drill_server or '-'} "
                          f"(connection {record.drill_conn_id})"),
        ("Started", _when(record.started_at)), ("Finished", _when(record.finished_at)),
        ("RTO", f"{rto}{within}"),
        ("RTO objective", f"{record.rto_objective_seconds:g} s"),
        ("Scratch database", "dropped " + _when(record.scratch_dropped_at)
         if record.scratch_dropped_at else
         ("not created" if not record.scratch_created else "NOT DROPPED")),
        ("Airflow run", f"{record.dag_id or '-'} / {record.run_id or '-'}"),
    ]
    lines = [f"# Restore drill {record.drill_id}: {verdict}", ""]
    if record.error:
        lines += [f"**Error:** {record.error}", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in facts] + [""]
    lines += ["## Checks", "", "| Result | Check | Detail |", "|---|---|---|"]
    lines += [f"| {_MARKS[c.status]} | {_cell(c.name)} | {_cell(c.detail)}"
              + (f" (hint: {_cell(c.hint)})" if c.hint and c.status != Level.OK else "") + " |"
              for c in record.checks]
    if not record.checks:
        lines.append("| - | - | no check ran |")
    return "\n".join(lines) + "\n"


def publish(storage: Storage, folder: str, record: DrillRecord) -> str:
    """Write (or overwrite) both report objects; returns the URI of the Markdown one."""
    json_key, md_key = report_keys(folder, record.drill_id)
    record.report_uri = storage.uri(md_key)
    storage.put_bytes(json_key, render_json(record))
    storage.put_bytes(md_key, render_markdown(record).encode())
    return record.report_uri
