"""``amprenta-backup recover``: the whole service onto a new, empty server, from storage alone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from amprenta_backup.cli.arguments import DryRunOption, FromCopyOption, JsonOption
from amprenta_backup.cli.index import short_help
from amprenta_backup.cli.output import print_json
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.models import RunContext, utcnow
from amprenta_backup.core.recovery.plan import DEFAULT_CATALOG_DATABASE, RecoveryRequest
from amprenta_backup.core.recovery.report import RecoveryReport

EXIT_MISMATCH = 1


RECOVER_HELP = (
    "Disaster recovery onto a new server: rebuild the catalog from the manifests in storage "
    "(into a new catalog database on the new server when the old one is gone), then restore "
    "each target's newest VERIFIED (else COMPLETED) backup into a database of its name, "
    "several at once, and check each as the restore drill does. Exits 1 on any mismatch.")


def register(app: typer.Typer) -> None:
    app.command("recover", help=RECOVER_HELP, short_help=short_help("recover"))(cmd_recover)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--before {text[:40]!r} is not an ISO time; use e.g. "
                          "2026-12-01T03:00:00+00:00") from None


def cmd_recover(
    server_conn_id: Annotated[str, typer.Option(
        "--server", metavar="CONN_ID", help="the new server (AIRFLOW_CONN_<CONN_ID>)")],
    targets: Annotated[list[str] | None, typer.Option(
        "--target", metavar="TARGET", help="only this backup target (repeatable)")] = None,
    before: Annotated[str | None, typer.Option(
        "--before", metavar="TIME",
        help="the newest backups started before this ISO time (with zone)")] = None,
    parallel: Annotated[int, typer.Option(
        "--parallel", metavar="N", help="databases restored at once (default 2)")] = 2,
    catalog_database: Annotated[str, typer.Option(
        "--catalog-database", metavar="NAME", help="the catalog database made on the new "
        "server if the configured catalog is unreachable")] = DEFAULT_CATALOG_DATABASE,
    allow_nonempty: Annotated[bool, typer.Option(
        "--allow-nonempty", help="write to a server that already holds databases (never over "
        "one of the recovered names)")] = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
    from_copy: FromCopyOption = False,
) -> int:
    request = RecoveryRequest(
        server_conn_id=server_conn_id, targets=tuple(targets or ()), before=_time(before),
        parallel=parallel, catalog_database=catalog_database, allow_nonempty=allow_nonempty,
        dry_run=dry_run)
    recovery = BackupEngine().recovery(from_copy=from_copy)
    report = recovery.run(request, RunContext(logical_date=utcnow()))
    if as_json:
        print_json(report.to_dict())
    else:
        print(_text(report))
    return 0 if report.passed or not report.performed else EXIT_MISMATCH


def _text(report: RecoveryReport) -> str:
    plan = report.plan
    lines = [f"{'dry run: nothing was touched' if not report.performed else 'plan:'}"]
    lines += [f"  {n}. {step}" for n, step in enumerate(plan.get("steps", []), start=1)]
    if not report.performed:
        return "\n".join(lines)
    lines.append(f"catalog: {report.rebuilt_records} records rebuilt "
                 f"({report.catalog_seconds or 0:.1f} s)")
    for d in report.databases:
        state = "ok" if d.ok else "FAILED: " + "; ".join(d.problems())
        lines.append(f"  {d.database:24} {d.backup_id}  {d.rows:>10} rows  {d.seconds:7.1f} s  "
                     f"{state}")
    lines += [report.summary, f"report: {report.report_uri or 'not written'}"]
    return "\n".join(lines)
