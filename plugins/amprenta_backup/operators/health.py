"""BackupHealthOperator: run the health checks, store them, alert on warnings and criticals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.health import Level, health_alerts, render, worst
from amprenta_backup.hooks.context import run_context
from amprenta_backup.notifiers.alerts import send_alert
from amprenta_backup.operators.engine import EngineOperator, fail_without_retry
from amprenta_backup.operators.stats import emit_figures

if TYPE_CHECKING:
    from airflow.sdk import Context


class BackupHealthOperator(EngineOperator):
    """Check the backup system as of the run's logical date (a backfill sees its own day).

    Stores every result in ``health_checks``, alerts about warnings and criticals through the
    configured channels, and fails (without retry) only when a check is critical.

    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    ui_color = "#d9f6cd"

    def execute(self, context: Context) -> list[dict[str, Any]]:
        with fail_without_retry():
            engine = self.engine
        if not engine.config.health_check_enabled:
            raise AirflowSkipException("BACKUP_HEALTH_CHECK_ENABLED is false")
        run = run_context(context)
        as_of = run.logical_date
        assert as_of is not None
        results = engine.health(as_of)  # WAL archiving too, when PITR is configured
        self.log.info("backup health as of %s:\n%s", as_of.isoformat(), render(results))
        try:
            engine.save_health(results, as_of, run.run_id)
        except BackupError as exc:
            self.log.warning("health results not stored: %s", exc)
        emit_figures(engine, self.log)  # every target's figures, WAL lag included
        ti: Any = context["ti"]
        for alert in health_alerts(results, run.dag_id, run.run_id, run.task_id, ti.log_url):
            send_alert(alert)
        level = worst(results)
        if level == Level.CRITICAL:
            self.alert_sent = True  # the check alerts above were this failure's alert
            bad = [f"{r.target or 'system'} {r.name}: {r.detail}" for r in results
                   if r.status == Level.CRITICAL]
            raise AirflowFailException("critical backup health: " + "; ".join(bad))
        return [r.to_dict() for r in results]
