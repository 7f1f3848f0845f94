"""PostgresBackupOperator: one logical backup of one target database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias
from airflow.sdk.exceptions import AirflowFailException

from amprenta_backup.core import layout
from amprenta_backup.core.errors import StepError
from amprenta_backup.core.models import human_bytes
from amprenta_backup.core.pipeline import ProgressLog
from amprenta_backup.core.settings import BackupTarget
from amprenta_backup.hooks.context import backup_id_for, run_context
from amprenta_backup.operators.engine import REFUSALS, EngineOperator, fail_without_retry
from amprenta_backup.operators.stats import emit_figures
from amprenta_backup.operators.targets import OneTarget

if TYPE_CHECKING:
    from airflow.sdk import Context

BACKUPS_ALIAS = AssetAlias("amprenta_backup.backups")


def target_asset(storage_uri: str, target: str) -> Asset:
    """The Asset that a completed backup of ``target`` updates."""
    return Asset(name=f"amprenta_backup.{target}", uri=storage_uri)


class PostgresBackupOperator(OneTarget, EngineOperator):
    """Dump one database with pg_dump into backup storage and record it in the catalog.

    A retry, or a cleared re-run of the same DAG run, reuses the same backup id: it never
    leaves two completed backups. Declare ``outlets=[BACKUPS_ALIAS]`` to emit an Asset event
    per target (its name ``amprenta_backup.<target>``) for DAGs that follow backups.

    :param target: ``conn_id`` or ``conn_id:database`` (templated)
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    template_fields: Sequence[str] = ("target",)
    ui_color = "#cde8f6"
    backup_id_from_run = True  # failure alerts name the backup: backup_id_for(run, target)

    def __init__(self, *, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def execute(self, context: Context) -> dict[str, Any]:
        with fail_without_retry():
            target = BackupTarget.parse(self.target)
            conn = self.engine.conninfo(target)
            run = run_context(context)
            backup_id = backup_id_for(run, target.name)
            runner = self.engine.runner()
            runner.progress = ProgressLog(f"backup of {target.name}", self.log)
        self.log.info("backing up %s (%s) as %s", target.name, conn.describe(), backup_id)
        try:
            manifest = runner.run(target.name, conn, run, backup_id)
        except StepError as exc:
            if isinstance(exc.__cause__, REFUSALS):
                raise AirflowFailException(str(exc)) from exc  # a retry cannot help
            raise
        finally:
            emit_figures(self.engine, self.log, target.name)
        folder = self.engine.storage.uri(layout.backup_folder(runner.settings.prefix,
                                                              target.name, backup_id))
        self.log.info("backup %s complete: %s stored (%s bytes, %.1fx), sha256 %s", backup_id,
                      human_bytes(manifest.stored_bytes), f"{manifest.stored_bytes:,}",
                      manifest.ratio, manifest.sha256)
        prefix_uri = self.engine.storage.uri(layout.target_prefix(runner.settings.prefix,
                                                                  target.name))
        if BACKUPS_ALIAS in self.outlets:
            context["outlet_events"][BACKUPS_ALIAS].add(
                target_asset(prefix_uri, target.name),
                extra={"backup_id": backup_id, "location": folder},
            )
        return {
            "backup_id": backup_id, "target": target.name, "uri": folder,
            "sha256": manifest.sha256, "stored_bytes": manifest.stored_bytes,
            "raw_bytes": manifest.raw_bytes, "duration_seconds": manifest.duration_seconds,
        }
