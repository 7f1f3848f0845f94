"""Point-in-time restore operators: plan (pick the base backup) and restore (on this worker)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from amprenta_backup.core.pitr.restore import PitrRequest
from amprenta_backup.core.pitr.workflow import PointInTime
from amprenta_backup.core.restore.writers import PipelinePlan
from amprenta_backup.core.settings import PitrSettings
from amprenta_backup.hooks.airflow_api import cluster_pipelines, quiesce_plan
from amprenta_backup.operators.engine import EngineOperator, fail_without_retry

if TYPE_CHECKING:
    from airflow.sdk import Context


class PitrOperator(EngineOperator):
    """Base of the PITR operators: the engine's PITR workflows, whose setting errors fail the
    task without retry.

    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    @cached_property
    def pitr(self) -> PointInTime:
        with fail_without_retry():
            return self.engine.pitr

    def skip_unless_configured(self) -> None:
        """Skip, not fail, a scheduled run while point-in-time recovery is not set up."""
        if not PitrSettings.configured():
            raise AirflowSkipException(
                "point-in-time recovery is not set up (BACKUP_PITR_CONN_ID is unset): nothing "
                "to do. Set BACKUP_PITR_CONN_ID and BACKUP_WAL_TARGET (docs/pitr.md), or keep "
                "this DAG paused")


class _RequestOperator(PitrOperator):
    template_fields: Sequence[str] = ("target_time", "data_directory", "port", "backup_id")

    def __init__(self, *, target_time: str, data_directory: str, port: int | str,
                 backup_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_time = target_time
        self.data_directory = data_directory
        self.port = port
        self.backup_id = backup_id

    def request(self) -> PitrRequest:
        with fail_without_retry():
            return PitrRequest.parse(self.target_time, self.data_directory, self.port,
                                     self.backup_id if self.backup_id not in ("", "None")
                                     else None)


class PitrPlanOperator(_RequestOperator):
    """Check the request and pick the base backup; nothing is written.

    :param target_time: ISO 8601 with a zone, or ``latest`` (templated)
    :param data_directory: new or empty directory on the worker (templated)
    :param port: port for the restored server (templated)
    :param backup_id: a base backup to use; empty = the newest that ended before the target
    :param pause_writers: whether the restore pauses the DAGs that write to the archived
        cluster (templated); the plan names them either way (``pipelines``, ``quiesce``)
    """

    template_fields: Sequence[str] = (*_RequestOperator.template_fields, "pause_writers")

    def __init__(self, *, pause_writers: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pause_writers = pause_writers

    def execute(self, context: Context) -> dict[str, Any]:
        request = self.request()
        with fail_without_retry():
            manifest = self.pitr.choose(request.target_time, request.backup_id)
            pipelines = cluster_pipelines(PitrSettings.from_env().conn_id, self.pitr.target)
            quiesce = quiesce_plan(pipelines, self.pause_writers in (True, "True", "true"))
        lines = PipelinePlan(None, pipelines, quiesce).lines()
        for line in lines:
            self.log.info("pipelines %s", line)
        wal = manifest.wal or {}
        self.log.info("restore %s up to %s from base backup %s (ended %s) into %s, port %d",
                      self.pitr.target, request.target_time or "the archive's end",
                      manifest.backup_id, wal.get("stop_time"), request.data_dir, request.port)
        return {"backup_id": manifest.backup_id, "base_backup_ended": wal.get("stop_time"),
                "target_time": request.target_time.isoformat() if request.target_time
                else "latest", "data_directory": str(request.data_dir), "port": request.port,
                "pipelines": {**pipelines.to_dict(), "lines": lines},
                "quiesce": quiesce.to_dict()}


class PitrRestoreOperator(_RequestOperator):
    """Restore a base backup and replay archived WAL up to the target time on this worker,
    start the server as ``BACKUP_PITR_OS_USER`` and wait until it is promoted.

    Returns the report: last replayed commit, achieved RPO, RTO and per-step seconds. On
    failure the data directory is removed and the server log's tail is in the error.

    :param target_time: ISO 8601 with a zone, or ``latest`` (templated)
    :param data_directory: new or empty directory on the worker (templated)
    :param port: port for the restored server (templated)
    :param backup_id: the base backup to use (templated), usually the plan's choice
    :param wait_seconds: how long recovery may take
    """

    def __init__(self, *, wait_seconds: float = 3600, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_seconds = wait_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        request = self.request()
        with fail_without_retry():
            report = self.pitr.restore(request, self.wait_seconds)
        self.log.info("restored to %s: last replayed commit %s, achieved RPO %s s, RTO %.1f s, "
                      "timeline %d; the server runs on 127.0.0.1:%d from %s",
                      report.target_time or "latest", report.recovered_to,
                      report.achieved_rpo_seconds, report.rto_seconds, report.timeline,
                      report.port, report.data_dir)
        return report.to_dict()
