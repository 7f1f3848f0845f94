"""Copy operators: one target's backup of this run (daily_backup), and a base backup with the
archived WAL (weekly_base_backup), to the second storage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from amprenta_backup.core.models import RESTORABLE
from amprenta_backup.core.settings import BackupTarget
from amprenta_backup.hooks.context import backup_id_for, run_context
from amprenta_backup.operators.engine import EngineOperator, fail_without_retry
from amprenta_backup.operators.pitr import PitrOperator
from amprenta_backup.operators.targets import OneTarget

if TYPE_CHECKING:
    from airflow.sdk import Context


class BackupCopyOperator(OneTarget, EngineOperator):
    """Copy the backup this run took of ``target`` to the copy storage (``BACKUP_COPY_*``):
    the primary is read once, the sha256 of every object is proven on the copy and the copy
    is recorded in ``backup_copies``.

    Skipped when no copy storage is configured, or when the run's backup of the target did
    not complete (its own task failed and alerts about it). A damaged primary fails without
    retry; storage that cannot be reached fails with retries.

    :param target: ``conn_id`` or ``conn_id:database`` (templated)
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted

    Then the target's newest completed backups still without a verified copy (up to 5, left
    by a failed copy or a copy storage that was down) are copied too.
    """

    template_fields: Sequence[str] = ("target",)
    ui_color = "#e6dcf2"

    def __init__(self, *, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def execute(self, context: Context) -> dict[str, Any]:
        with fail_without_retry():
            if self.engine.copies is None:
                raise AirflowSkipException("no copy storage is configured "
                                           "(BACKUP_COPY_STORAGE_TYPE is unset)")
            target = BackupTarget.parse(self.target)
            run = run_context(context)
            backup_id = backup_id_for(run, target.name)
            record = self.engine.catalog.get(backup_id)
            if record is None or record.status not in RESTORABLE:
                state = record.status if record else "not recorded"
                raise AirflowSkipException(f"backup {backup_id} of {target.name} is {state}; "
                                           "nothing to copy")
            outcome = self.engine.copy_backup(backup_id, run=run)
            earlier = self.engine.copies.catch_up(target.name, run=run)  # left by failed runs
        for done in (outcome, *earlier):
            self.log.info("%s", done.message)
        return {**outcome.record.to_dict(), "caught_up": [o.record.backup_id for o in earlier]}


class PitrCopyOperator(PitrOperator):
    """Copy this run's base backup and every archived WAL file the copy lacks (of
    ``BACKUP_WAL_TARGET``) to the copy storage, each object's sha256 proven on the copy.

    Skipped when point-in-time recovery or a copy storage is not configured.

    :param backup_task_id: task id of the base backup's ``complete`` task, whose backup this
        copies (None: only the WAL)
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    ui_color = "#e6dcf2"

    def __init__(self, *, backup_task_id: str | None = "complete", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_task_id = backup_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        self.skip_unless_configured()
        with fail_without_retry():
            if self.engine.copies is None:
                raise AirflowSkipException("no copy storage is configured "
                                           "(BACKUP_COPY_STORAGE_TYPE is unset)")
            target = self.pitr.target
            done: Any = context["ti"].xcom_pull(task_ids=self.backup_task_id) \
                if self.backup_task_id else None
            base = self.engine.copy_backup(done["backup_id"], run=run_context(context)) \
                if done else None
        wal = self.engine.copies.copy_wal(target)
        if base is not None:
            self.log.info("%s", base.message)
        self.log.info("%d WAL files of %s copied", len(wal), target)
        return {"base_backup": base.record.to_dict() if base else None, "wal_copied": len(wal)}
