"""AdminTableNotifier: backup alerts as rows of the catalog's ``admin_notifications`` table."""

from __future__ import annotations

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.notifications import Alert, create_admin_notification, format_alert
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.hooks.postgres import PostgresTargetHook
from amprenta_backup.notifiers.base import BackupAlertNotifier


def alert_catalog(conn_id: str | None = None) -> Catalog:
    """The catalog alerts are stored in (``BACKUP_CATALOG_CONN_ID`` unless ``conn_id``)."""
    conn_id = conn_id or BackupConfig.from_env().catalog_conn_id
    return Catalog(PostgresTargetHook(conn_id, setting="BACKUP_CATALOG_CONN_ID").get_conninfo())


class AdminTableNotifier(BackupAlertNotifier):
    """Store alerts for the admins with the spec's ``create_admin_notification``.

    :param catalog_conn_id: Postgres connection of the catalog; BACKUP_CATALOG_CONN_ID if None
    """

    def __init__(self, *, catalog_conn_id: str | None = None) -> None:
        super().__init__()
        self.catalog_conn_id = catalog_conn_id

    def send_alert(self, alert: Alert) -> None:
        message = format_alert(alert)
        row_id = create_admin_notification(alert_catalog(self.catalog_conn_id), alert.title,
                                           message.text, alert.notification_type)
        self.log.info("stored alert %r as admin notification %d", alert.title, row_id)
