"""ListBackupTargetsOperator: the configured targets, for one mapped task each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.layout import target_name
from amprenta_backup.core.settings import BackupConfig

if TYPE_CHECKING:
    from airflow.sdk import Context

BY_TARGET = "{{ task.target_name }}"
"""``map_index_template`` of a task mapped over the targets (a :class:`OneTarget`): the grid
shows the target as its backups are filed and listed."""
BY_BACKUP = "{{ task.backup_id }}"
"""``map_index_template`` of a task mapped over backup ids: the grid shows the backup."""


class OneTarget:
    """A task over one backup target, ``target`` as ``BACKUP_TARGETS`` spells it."""

    target: str

    @property
    def target_name(self) -> str:
        """The target as filed and listed (``pg_main.sales`` for ``pg_main:sales``; see
        :func:`~amprenta_backup.core.layout.target_name`); the text as given if it names no
        target, since the map index is also rendered after the task has failed on it."""
        try:
            return target_name(self.target)
        except ConfigError:
            return str(self.target)


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
