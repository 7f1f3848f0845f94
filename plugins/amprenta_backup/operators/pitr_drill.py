"""PITR drill operators: mark T on the source, restore to T in a scratch cluster, tear it down.

The drill's lifecycle lives in core (:class:`~amprenta_backup.core.pitr.drill.PitrDrill`);
each operator runs one step of it and passes what the next step needs through XCom.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.pitr.drill import PitrDrill, Scratch
from amprenta_backup.hooks.context import backup_id_for, run_context
from amprenta_backup.operators.engine import fail_without_retry
from amprenta_backup.operators.pitr import PitrOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _DrillOperator(PitrOperator):
    def __init__(self, *, prepare_task_id: str = "mark_source",
                 restore_task_id: str = "restore_to_t", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepare_task_id = prepare_task_id
        self.restore_task_id = restore_task_id

    @cached_property
    def drill(self) -> PitrDrill:
        return self.pitr.drill()

    def prepared(self, context: Context) -> dict[str, Any] | None:
        value: Any = context["ti"].xcom_pull(task_ids=self.prepare_task_id)
        return value if isinstance(value, dict) else None


class PitrDrillMarkOperator(_DrillOperator):
    """Start the drill: write the ``before`` row, note T, write the ``after`` row, switch WAL
    and wait until it is archived. Returns the drill id and T.

    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    def execute(self, context: Context) -> dict[str, Any]:
        self.skip_unless_configured()
        run = run_context(context)
        drill_id = backup_id_for(run, f"pitr-drill/{self.pitr.target}")
        with fail_without_retry():
            marks = self.drill.mark(drill_id, run.dag_id, run.run_id)
        self.log.info("drill %s: T = %s, archived through %s", drill_id,
                      marks.target_time.isoformat(), marks.last_segment)
        return {"drill_id": drill_id, "target_time": marks.target_time.isoformat()}


class PitrDrillRestoreOperator(_DrillOperator):
    """Restore to T into a new scratch cluster on this worker, check the marker rows, and
    record the achieved RPO and RTO in ``pitr_drills``. The scratch folder is named in XCom
    (key ``scratch``) before anything is written, for the teardown.

    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    def execute(self, context: Context) -> dict[str, Any]:
        prepared = self.prepared(context)
        if prepared is None:
            raise BackupError(f"task {self.prepare_task_id} left no drill to restore")
        drill_id, when = prepared["drill_id"], datetime.fromisoformat(prepared["target_time"])
        scratch = self.drill.scratch()
        context["ti"].xcom_push(key="scratch", value={"folder": str(scratch.folder),
                                                      "port": scratch.port})
        with fail_without_retry():
            report, rows = self.drill.restore(drill_id, when, scratch)
        self.log.info("drill %s passed: restored to %s, last commit %s, RPO %.3f s, RTO %.1f s",
                      drill_id, when.isoformat(), report.recovered_to,
                      report.achieved_rpo_seconds or 0.0, report.rto_seconds)
        return {**report.to_dict(), "drill_id": drill_id, "rows": rows}


class PitrDrillTeardownOperator(_DrillOperator):
    """Stop and remove the scratch cluster (run as an ALL_DONE teardown), and mark a drill
    that never finished as failed.

    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    def execute(self, context: Context) -> dict[str, Any]:
        saved: Any = context["ti"].xcom_pull(task_ids=self.restore_task_id, key="scratch")
        scratch = (Scratch(Path(saved["folder"]), int(saved["port"]))
                   if isinstance(saved, dict) else None)
        prepared = self.prepared(context)
        closed = self.drill.teardown(scratch, prepared["drill_id"] if prepared else None)
        if scratch is not None:
            self.log.info("removed scratch cluster %s", scratch.folder)
        return {"removed": str(scratch.folder) if scratch else None,
                "closed_unfinished": closed}
