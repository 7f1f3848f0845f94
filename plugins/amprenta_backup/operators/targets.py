"""ListBackupTargetsOperator: the configured targets, for one mapped task each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.settings import BackupConfig

if TYPE_CHECKING:
    from airflow.sdk import Context

BY_TARGET = "{{ task.target | replace(':', '.') }}"
"""``map_index_template`` of a task mapped over the targets: the grid shows the target as its
backups are filed and listed (``pg_main.sales``; the task's own is ``BACKUP_TARGETS``'s
``pg_main:sales``)."""
BY_BACKUP = "{{ task.backup_id }}"
"""``map_index_template`` of a task mapped over backup ids: the grid shows the backup."""


class ListBackupTargetsOperator(BaseOperator):
    """Return ``BACKUP_TARGETS`` as a list of ``conn_id[:database]`` strings.

    Fails without retry, naming the variable, when the setting is empty or malformed.
    """

    def execute(self, context: Context) -> list[str]:
        try:
            targets = BackupConfig.from_env().targets
        except ConfigError as exc:
            raise AirflowFailException(str(exc)) from None
        if not targets:
            raise AirflowFailException(
                "BACKUP_TARGETS is empty; set it to the Postgres connection ids to back up, "
                "e.g. BACKUP_TARGETS=pg_main,pg_main:analytics"
            )
        names: list[Any] = [t.to_text() for t in targets]
        self.log.info("backup targets: %s", ", ".join(names))
        return names
