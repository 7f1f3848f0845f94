"""WalRetentionOperator: remove archived WAL that no stored base backup needs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amprenta_backup.operators.pitr import PitrOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class WalRetentionOperator(PitrOperator):
    """Delete WAL older than the start of the oldest base backup still in storage.

    Base backups leave storage through retention (``weekly_cleanup``); their WAL follows
    here. Never deletes anything when no base backup is stored.

    :param report_only: only report what would be removed
    :param config: backup settings; read from ``BACKUP_*`` at run time when omitted
    """

    def __init__(self, *, report_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.report_only = report_only

    def execute(self, context: Context) -> dict[str, Any]:
        self.skip_unless_configured()
        report = self.pitr.wal_retention(dry_run=self.report_only)
        self.log.info("%s %d WAL files (%d bytes) of %s; kept %d from %s",
                      "would remove" if self.report_only else "removed", len(report.removed),
                      report.bytes_freed, self.pitr.target, report.kept,
                      report.keep_from or "(all: no base backup stored)")
        return report.to_dict()
