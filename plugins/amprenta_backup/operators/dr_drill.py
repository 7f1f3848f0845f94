"""DR drill operators: start an empty server, recover the whole service onto it, remove it."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pitr.localserver import server_user
from amprenta_backup.core.recovery.drill import (
    DRILL_CATALOG_DATABASE,
    SCRATCH_CONN_ID,
    DrDrillSettings,
    drop_databases,
    source_major,
)
from amprenta_backup.core.recovery.plan import RecoveryRequest
from amprenta_backup.core.recovery.run import DR_DRILL
from amprenta_backup.core.recovery.scratch import ScratchCluster, server_bin_dir
from amprenta_backup.hooks.context import run_context
from amprenta_backup.operators.engine import EngineOperator, fail_without_retry
from amprenta_backup.operators.recovery import finish

if TYPE_CHECKING:
    from airflow.sdk import Context


class _DrDrillOperator(EngineOperator):
    """Settings from ``BACKUP_DR_DRILL_*``; ``next_major`` (templated) overrides the setting.

    :param next_major: ``"true"``/``"false"`` (a Param) or None for the setting
    :param server_task_id: the task that started the server (its XCom names it)
    """

    template_fields = ("next_major",)

    def __init__(self, *, next_major: Any = None, server_task_id: str = "start_server",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.next_major = next_major
        self.server_task_id = server_task_id

    @cached_property
    def settings(self) -> DrDrillSettings:
        with fail_without_retry():
            settings = DrDrillSettings.from_env()
            if str(self.next_major).strip().lower() not in ("", "none"):
                wanted = str(self.next_major).lower() in ("true", "1", "yes")
                settings = DrDrillSettings.from_env(next_major=wanted)
        return settings

    def server(self, context: Context) -> dict[str, Any] | None:
        value: Any = context["ti"].xcom_pull(task_ids=self.server_task_id)
        return value if isinstance(value, dict) else None


def _scratch(server: dict[str, Any]) -> ScratchCluster:
    return ScratchCluster(Path(server["folder"]), int(server["port"]), Path(server["bin"]),
                          server.get("os_user"))


class DrDrillServerOperator(_DrDrillOperator):
    """Start the empty server: a new cluster on this worker (of the source's major, or the
    next one), or the configured ``BACKUP_DR_DRILL_CONN_ID``. Returns where it is (no secret)."""

    def execute(self, context: Context) -> dict[str, Any]:
        settings = self.settings
        if settings.conn_id:
            self.log.info("DR drill onto the server of connection %s", settings.conn_id)
            return {"conn_id": settings.conn_id}
        with fail_without_retry():
            index = self.engine.recovery(DR_DRILL).reading_index()
            wanted = source_major(index) + 1 if settings.next_major else None
            bin_folder = server_bin_dir(wanted)
        scratch = ScratchCluster.create(settings.scratch_dir, bin_folder,
                                        server_user(settings.os_user))
        self.log.info("scratch cluster %s on port %d (binaries %s%s)", scratch.folder,
                      scratch.port, bin_folder, ", upgrade rehearsal" if wanted else "")
        return {"folder": str(scratch.folder), "port": scratch.port, "bin": str(bin_folder),
                "os_user": scratch.os_user, "next_major": wanted}


class DrDrillRecoverOperator(_DrDrillOperator):
    """Recover every target onto the drill server, as ``disaster_recovery`` would, and keep
    the measured whole-service RTO in ``drill_runs`` and ``recovery_runs`` with a report.
    The trigger form's ``backup_ids`` replace their targets' newest backups. Pushes the plan
    (key ``plan``) before writing anything, for the teardown."""

    def execute(self, context: Context) -> dict[str, Any]:
        server = self.server(context)
        if server is None:
            raise AirflowFailException(f"task {self.server_task_id} started no server")
        conn_id, known = self._drill_server(server)
        chosen = (context.get("params") or {}).get("backup_ids") or ()
        recovery = self.engine.recovery(DR_DRILL, servers=known)
        with fail_without_retry():
            request = RecoveryRequest(server_conn_id=conn_id, parallel=self.settings.parallel,
                                      catalog_database=DRILL_CATALOG_DATABASE,
                                      allow_nonempty=True, backup_ids=tuple(chosen))
            planned = recovery.plan(request)
        context["ti"].xcom_push(key="plan", value=planned.plan.to_dict())
        report = recovery.run(request, run_context(context), planned)
        try:
            self.engine.save_dr_drill(report, conn_id, self.settings.rto_seconds)
        except BackupError as exc:
            self.log.error("the drill was not recorded in drill_runs: %s", exc)
        return finish(self, context, report)

    def _drill_server(self, server: dict[str, Any]) -> tuple[str, dict[str, PgConnInfo]]:
        if server.get("conn_id"):
            return str(server["conn_id"]), {}
        return SCRATCH_CONN_ID, {SCRATCH_CONN_ID: _scratch(server).conninfo()}


class DrDrillTeardownOperator(_DrDrillOperator):
    """Remove the scratch cluster, or drop what the drill created on the drill server (run as
    an ALL_DONE teardown, whatever happened before).

    :param recover_task_id: the recover task whose plan names the databases it created
    """

    def __init__(self, *, recover_task_id: str = "recover", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recover_task_id = recover_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        server = self.server(context)
        if server is None:
            return {"removed": None}
        if not server.get("conn_id"):
            scratch = _scratch(server)
            scratch.remove()
            self.log.info("removed scratch cluster %s", scratch.folder)
            return {"removed": str(scratch.folder)}
        plan: Any = context["ti"].xcom_pull(task_ids=self.recover_task_id, key="plan")
        names = [d["database"] for d in plan["databases"]] if isinstance(plan, dict) else []
        if isinstance(plan, dict):
            names.append(plan["request"]["catalog_database"])
        conn = self.engine.resolve(str(server["conn_id"]), None)
        dropped = drop_databases(conn, names)
        self.log.info("dropped %s on the drill server", ", ".join(dropped) or "nothing")
        return {"dropped": dropped}
