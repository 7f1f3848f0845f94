"""EmailAlertNotifier: backup alerts through the smtp provider's notifier."""

from __future__ import annotations

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from amprenta_backup.core.notifications import Alert, format_alert
from amprenta_backup.notifiers.base import BackupAlertNotifier


class EmailAlertNotifier(BackupAlertNotifier):
    """Email alerts to the admins.

    :param to: recipients (BACKUP_ALERT_EMAIL_TO)
    :param smtp_conn_id: an ``smtp`` connection (BACKUP_SMTP_CONN_ID)
    :param from_email: sender; the connection's ``from_email`` extra when None
    """

    def __init__(self, *, to: list[str], smtp_conn_id: str, from_email: str | None = None
                 ) -> None:
        super().__init__()
        self.to = to
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email

    def send_alert(self, alert: Alert) -> None:
        message = format_alert(alert)
        SmtpNotifier(to=self.to, from_email=self.from_email, subject=message.subject,
                     html_content=message.html, smtp_conn_id=self.smtp_conn_id).notify({})
        self.log.info("emailed alert %r to %s", alert.title, ", ".join(self.to))
