"""BackupRetentionOperator: apply the retention policies to storage and catalog."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException

from amprenta_backup.core.errors import BackupError
from amprenta_backup.hooks.context import run_context
from amprenta_backup.operators.engine import EngineOperator, fail_without_retry

if TYPE_CHECKING:
    from airflow.sdk import Context


class BackupRetentionOperator(EngineOperator):
    """Delete the backups no retention policy keeps (never the newest good one of a target,
    nothing younger than 7 days, locked or running), abort stale uploads, sweep leftovers;
    with a second copy, then apply ``BACKUP_COPY_RETENTION_*`` to the copy by the same rules.

    Returns the figures: backups removed, bytes freed, how many were kept and why.

    :param dry_run: only log the plan; a run's ``dry_run`` param turns it on too
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    ui_color = "#f6e3cd"

    def __init__(self, *, dry_run: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.is_dry_run = dry_run  # BaseOperator.dry_run() is a method

    def execute(self, context: Context) -> dict[str, Any]:
        with fail_without_retry():
            retention = self.engine.retention()
        run = run_context(context)
        dry_run = self.is_dry_run or bool((context.get("params") or {}).get("dry_run", False))
        report = retention.run(None, deleted_by=f"airflow:{run.dag_id}/{run.run_id}",
                             dry_run=dry_run)
        self.log.info("%s", report.summary())
        figures = report.to_dict()
        if self.engine.copies is not None:  # the copy's own retention, on the copy only
            copies = self.engine.copy_retention(f"airflow:{run.dag_id}/{run.run_id}", dry_run)
            self.log.info("%s", copies.summary())
            figures["copy"] = copies.to_dict()
            report.errors += [f"copy: {e}" for e in copies.errors]
        try:  # the project exports' retention: the same days and keep-last
            exports = self.engine.project_exports().expire(self.engine.config,
                                                           self.engine.catalog.now(), dry_run)
        except BackupError as exc:
            report.errors.append(f"exports: {exc}")
        else:
            self.log.info("%s", exports.summary())
            figures["exports"] = exports.to_dict()
            report.errors += [f"exports: {e}" for e in exports.errors]
        if report.errors:
            context["ti"].xcom_push(key="return_value", value=figures)
            raise AirflowException(f"cleanup finished with {len(report.errors)} errors: "
                                   + "; ".join(report.errors[:5]))
        return figures
