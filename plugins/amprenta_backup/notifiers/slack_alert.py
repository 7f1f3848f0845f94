"""SlackAlertNotifier: backup alerts through the slack provider's webhook notifier."""

from __future__ import annotations

from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

from amprenta_backup.core.notifications import Alert, format_alert
from amprenta_backup.notifiers.base import BackupAlertNotifier


class SlackAlertNotifier(BackupAlertNotifier):
    """Post alerts to a Slack Incoming Webhook.

    :param slack_webhook_conn_id: a ``slackwebhook`` connection (BACKUP_SLACK_CONN_ID)
    """

    def __init__(self, *, slack_webhook_conn_id: str) -> None:
        super().__init__()
        self.slack_webhook_conn_id = slack_webhook_conn_id

    def send_alert(self, alert: Alert) -> None:
        text = format_alert(alert).text
        SlackWebhookNotifier(slack_webhook_conn_id=self.slack_webhook_conn_id,
                             text=text).notify({})  # type: ignore[no-untyped-call]
        self.log.info("sent alert %r to Slack (%s)", alert.title, self.slack_webhook_conn_id)
