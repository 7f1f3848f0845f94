"""PITR drill operators: mark T on the source, restore to T in a scratch cluster, tear it down."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.pitr.drill import DrillLog, Scratch, check_rows, mark_source
from amprenta_backup.core.pitr.localserver import server_user
from amprenta_backup.core.pitr.restore import (
    PitrReport,
    PitrRequest,
    PitrRestore,
    choose_base_backup,
)
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
    def drills(self) -> DrillLog:
        return DrillLog(self.hook.engine.catalog)

    def prepared(self, context: Context) -> dict[str, Any] | None:
        value: Any = context["ti"].xcom_pull(task_ids=self.prepare_task_id)
        return value if isinstance(value, dict) else None


class PitrDrillMarkOperator(_DrillOperator):
    """Start the drill: write the ``before`` row, note T, write the ``after`` row, switch WAL
    and wait until it is archived. Returns the drill id and T.

    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        run = run_context(context)
        drill_id = backup_id_for(run, f"pitr-drill/{hook.pitr.wal_target}")
        self.drills.start(drill_id, hook.pitr.wal_target, run.dag_id, run.run_id)
        try:
            with fail_without_retry():
                marks = mark_source(hook.cluster_conninfo(), hook.archive, drill_id,
                                    hook.pitr.archive_wait_seconds)
        except BaseException as exc:
            self.drills.finish(drill_id, None, None, f"marking the source failed: {exc}")
            raise
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
        hook, engine = self.hook, self.hook.engine
        drill_id, when = prepared["drill_id"], datetime.fromisoformat(prepared["target_time"])
        scratch = Scratch.create(hook.pitr.scratch_dir)
        context["ti"].xcom_push(key="scratch", value={"folder": str(scratch.folder),
                                                      "port": scratch.port})
        report: PitrReport | None = None
        try:
            with fail_without_retry():
                manifest = choose_base_backup(engine.catalog, engine.storage,
                                              hook.pitr.wal_target, when)
                restorer = PitrRestore(engine.storage, hook.archive, hook.wal_command(),
                                       hook.restore_env(), server_user(hook.pitr.os_user))
                conn = hook.cluster_conninfo()
                report = restorer.run(manifest, PitrRequest(when, scratch.data_dir,
                                                            scratch.port), conn)
                rows = check_rows(report, conn, drill_id)
        except BaseException as exc:
            self.drills.finish(drill_id, report, None, str(exc), target_time=when)
            raise
        self.drills.finish(drill_id, report, rows, None)
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
        scratch: Any = context["ti"].xcom_pull(task_ids=self.restore_task_id, key="scratch")
        removed = None
        if isinstance(scratch, dict):
            folder = Scratch(Path(scratch["folder"]), int(scratch["port"]))
            folder.remove(server_user(self.hook.pitr.os_user))
            removed = str(folder.folder)
            self.log.info("removed scratch cluster %s", removed)
        prepared = self.prepared(context)
        closed = bool(prepared) and self.drills.close_unfinished(prepared["drill_id"])  # type: ignore[index]
        return {"removed": removed, "closed_unfinished": closed}
