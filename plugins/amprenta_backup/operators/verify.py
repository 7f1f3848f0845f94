"""Verification operators: list the backups a run should verify, and verify one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from amprenta_backup.hooks.context import run_context
from amprenta_backup.operators.engine import EngineOperator, fail_without_retry

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_LIMIT = 200


class ListUnverifiedBackupsOperator(EngineOperator):
    """Return the ids of completed backups never verified, newest first, for task mapping.

    A backfill run lists only the backups that started inside its own data interval; any other
    run lists every unverified backup, then (``BACKUP_REVERIFY_DAYS``, 30) every verified one
    last read back longer ago than that. At most ``limit`` ids per run (under Airflow's
    ``max_map_length``); the rest wait for the next run, and the log says how many.

    :param limit: most ids to return
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    def __init__(self, *, limit: int = DEFAULT_LIMIT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    def execute(self, context: Context) -> list[str]:
        run_type = getattr(context.get("dag_run"), "run_type", None)
        start = end = None
        if getattr(run_type, "value", run_type) == "backfill":
            start, end = context.get("data_interval_start"), context.get("data_interval_end")
            self.log.info("backfill run: backups started in [%s, %s)", start, end)
        days = self.engine.config.reverify_days
        found = self.engine.pending_verification(
            started_after=start, before=end, limit=self.limit + 1,
            reverify_after=timedelta(days=days) if days else None)
        if len(found) > self.limit:
            self.log.warning("more than %d backups await verification; the oldest wait for the "
                             "next run", self.limit)
        ids: list[Any] = [record.backup_id for record in found[: self.limit]]
        self.log.info("%d backups to verify: %s", len(ids), ", ".join(ids) or "none")
        return ids


class BackupVerifyOperator(EngineOperator):
    """Read one backup back whole and record it VERIFIED or CORRUPT in the catalog.

    A corrupt backup fails the task without retry, naming the target, the backup id and what
    did not match (sha256, size, missing object or manifest, unreadable archive). Storage that
    cannot be reached fails it with retries and marks nothing.

    :param backup_id: the backup to verify (templated)
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    template_fields: Sequence[str] = ("backup_id",)
    ui_color = "#d9ead3"

    def __init__(self, *, backup_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_id = backup_id

    def execute(self, context: Context) -> dict[str, Any]:
        with fail_without_retry():
            result = self.engine.verify(self.backup_id, run=run_context(context))
            result.raise_if_corrupt()  # the outcome was logged by the verification, once
        return result.to_dict()
