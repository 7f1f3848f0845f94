"""Restore drill operators (setup, restore, checks, teardown) and the task group that chains them.

Every operator takes the same ``target``; the drill's id follows from the run and the target,
so the steps share no XCom and the teardown runs even when the setup left nothing behind.
A failed drill fails its task without retry; the alert goes out through the failure
callbacks of ``default_args`` (``BACKUP_ALERT_CHANNELS``), naming the target and the backup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import TriggerRule, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from amprenta_backup.core.drill.record import DrillRecord
from amprenta_backup.core.drill.runner import DrillRunner, drill_id_for
from amprenta_backup.core.settings import BackupTarget
from amprenta_backup.hooks.context import run_context
from amprenta_backup.operators.engine import EngineOperator, fail_without_retry
from amprenta_backup.operators.targets import BY_TARGET, OneTarget

if TYPE_CHECKING:
    from airflow.sdk import Context


def _utc(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value.timestamp(), tz=UTC) if value is not None else None


def run_interval(context: Context) -> tuple[datetime | None, datetime | None]:
    """The run's data interval, or (None, None) for a run without one (the window ends at the
    run's logical date then)."""
    start = _utc(context.get("data_interval_start"))
    end = _utc(context.get("data_interval_end"))
    return (start, end) if start and end and start < end else (None, None)


class _DrillOperator(OneTarget, EngineOperator):
    """One step of the drill of ``target``.

    :param target: ``conn_id`` or ``conn_id:database`` (templated)
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    template_fields: Sequence[str] = ("target",)

    def __init__(self, *, target: str, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", BY_TARGET)  # mapped: the grid names the target
        super().__init__(**kwargs)
        self.target = target
        self.backup_id: str | None = None  # named in failure alerts once known

    @cached_property
    def runner(self) -> DrillRunner:
        with fail_without_retry():
            return self.engine.drills()

    def backup_target(self) -> BackupTarget:
        with fail_without_retry():
            return BackupTarget.parse(self.target)

    def drill_id(self, context: Context) -> str:
        return drill_id_for(run_context(context), self.backup_target().name)

    def loaded(self, context: Context) -> str:
        """The drill id, with :attr:`backup_id` set from its record."""
        drill_id = self.drill_id(context)
        with fail_without_retry():
            self.backup_id = self.runner.load(drill_id).backup_id
        return drill_id

    @staticmethod
    def result(record: DrillRecord) -> dict[str, Any]:
        return {"drill_id": record.drill_id, "target": record.target,
                "backup_id": record.backup_id, "scratch_database": record.scratch_database,
                "passed": record.passed, "rto_seconds": record.rto_seconds,
                "report_uri": record.report_uri}


class DrillSetupOperator(_DrillOperator):
    """Pick the backup to drill (the one the trigger form's ``backup_id`` names, else the latest
    of the run's interval, or a random recent one) and check that the scratch database name is
    free; records the drill in ``drill_runs``. Targets other than the named backup's skip."""

    ui_color = "#e6e0f8"

    def execute(self, context: Context) -> dict[str, Any]:
        target = self.backup_target()
        backup_id = (context.get("params") or {}).get("backup_id") or None
        if backup_id:  # the trigger form named a backup: only its own target is drilled
            with fail_without_retry():
                owner = self.runner.target_of(backup_id)
            if owner != target.name:
                raise AirflowSkipException(f"backup {backup_id} is a backup of {owner}, so "
                                           f"{target.name} is not drilled in this run")
        with fail_without_retry():
            record = self.runner.prepare(target, run_context(context), run_interval(context),
                                         backup_id=backup_id)
        self.backup_id = record.backup_id
        self.log.info("drill %s: backup %s (%s, started in [%s, %s)) into %s on %s",
                      record.drill_id, record.backup_id, record.strategy, record.window_start,
                      record.window_end, record.scratch_database, record.drill_server)
        return self.result(record)


class DrillRestoreOperator(_DrillOperator):
    """Restore the picked backup into the scratch database (``mode=new_database``) through the
    restore code: its checksum is proven first; a corrupt backup fails without retry."""

    ui_color = "#f4cccc"

    def execute(self, context: Context) -> dict[str, Any]:
        drill_id = self.loaded(context)
        with fail_without_retry():
            record = self.runner.restore(drill_id)
        self.log.info("drill %s: restored in %.1f s", drill_id, record.restore_seconds or 0.0)
        return self.result(record)


class DrillChecksOperator(_DrillOperator):
    """Check the restored data (row counts, foreign keys, CHECK constraints, sequences, user
    assertions) and the RTO; fails without retry, naming each failed check, if any fails."""

    ui_color = "#d9ead3"

    def execute(self, context: Context) -> dict[str, Any]:
        drill_id = self.loaded(context)
        with fail_without_retry():
            record = self.runner.check(drill_id)
        for check in record.checks:
            self.log.info("%-8s %-24s %s", check.status.upper(), check.name, check.detail)
        if not record.passed:
            raise AirflowFailException(f"{record.summary}; report: {record.report_uri}")
        self.log.info("report: %s", record.report_uri)  # the runner logged the summary
        return self.result(record)


class DrillTeardownOperator(_DrillOperator):
    """Drop the scratch database if this drill created it, whatever happened before
    (``ALL_DONE``, a teardown task: the run's state follows the checks), and close the record.
    """

    ui_color = "#eeeeee"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        super().__init__(**kwargs)
        self.is_teardown = True

    def execute(self, context: Context) -> dict[str, Any] | None:
        with fail_without_retry():
            record = self.runner.teardown(self.drill_id(context))
        if record is None:
            return None
        self.backup_id = record.backup_id
        return {**self.result(record), "scratch_dropped": record.scratch_dropped_at is not None}


@task_group(group_id="drill")
def drill_target(target: str) -> None:
    """setup -> restore -> checks -> teardown for one target; map it over the targets."""
    setup = DrillSetupOperator(task_id="setup", target=target)
    restore = DrillRestoreOperator(task_id="restore", target=target,
                                   max_active_tis_per_dagrun=1)
    checks = DrillChecksOperator(task_id="checks", target=target)
    teardown = DrillTeardownOperator(task_id="teardown", target=target)
    setup >> restore >> checks >> teardown
