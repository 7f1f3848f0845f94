"""Alert messages name what failed and where, and never carry a secret."""

from __future__ import annotations

import pytest

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.notifications import Alert, format_alert, redact
from amprenta_backup.core.settings import AlertSettings


def test_an_alert_names_dag_task_target_backup_error_and_log() -> None:
    alert = Alert(title="daily_backup: task backup[0] failed for pg_main",
                  notification_type="critical", error="StepError: step 'dump' failed: disk full",
                  dag_id="daily_backup", task_id="backup[0]", run_id="scheduled__2026-11-24",
                  target="pg_main", backup_id="20261124T010000Z-1a2b3c4d",
                  log_url="http://airflow:8080/dags/daily_backup/runs/x/tasks/backup/mapped/0")
    message = format_alert(alert)
    assert message.subject == ("[amprenta-backup critical] daily_backup: task backup[0] failed "
                               "for pg_main")
    for line in ("DAG: daily_backup", "Task: backup[0]", "Target: pg_main",
                 "Backup id: 20261124T010000Z-1a2b3c4d", "Error: StepError: step 'dump' failed",
                 "Log: http://airflow:8080/dags/daily_backup/runs/x/tasks/backup/mapped/0"):
        assert line in message.text
    assert message.html.startswith("<pre>") and "&#x27;dump&#x27;" in message.html


@pytest.mark.parametrize(("text", "secret"), [
    ("could not connect: postgresql://backup:Hunter2xx@db1:5432/app", "Hunter2xx"),
    ("host=db1 user=backup password=Hunter2xx dbname=app", "Hunter2xx"),
    ("host=db1 password='Hunter 2xx' dbname=app", "Hunter 2xx"),
    ('extra: {"login": "u", "password": "Hunter2xx"}', "Hunter2xx"),
    ("env PGPASSWORD=Hunter2xx pg_dump", "Hunter2xx"),
    ("aws_secret_access_key: wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI/K7MDENG"),
    ("posting to https://hooks.slack.com/services/T00/B00/XXXXSECRET failed", "XXXXSECRET"),
])
def test_secrets_never_reach_a_message(text: str, secret: str) -> None:
    alert = Alert(title=f"failed: {text}", notification_type="warning", error=text,
                  details=(text,))
    message = format_alert(alert)
    assert secret not in message.subject + message.text + message.html
    assert "********" in message.text


def test_redaction_keeps_ordinary_error_text() -> None:
    text = 'FATAL: password authentication failed for user "backup"'
    assert redact(text) == text


def test_alert_settings_read_the_environment_and_name_bad_values() -> None:
    settings = AlertSettings.from_env({
        "BACKUP_ALERT_CHANNELS": "Slack, email,table,slack", "BACKUP_SLACK_CONN_ID": "ops_slack",
        "BACKUP_ALERT_EMAIL_TO": "ops@example.com, dba@example.com", "BACKUP_DEADLINE_HOURS": "2.5",
    })
    assert settings.channels == ("slack", "email", "table")
    assert settings.email_to == ("ops@example.com", "dba@example.com")
    assert settings.slack_conn_id == "ops_slack" and settings.deadline_hours == 2.5
    assert AlertSettings.from_env({}).channels == ("table",)
    assert not AlertSettings.from_env({"BACKUP_NOTIFICATION_ENABLED": "false"}).enabled
    with pytest.raises(ConfigError, match="BACKUP_ALERT_CHANNELS names pager"):
        AlertSettings.from_env({"BACKUP_ALERT_CHANNELS": "pager,slack"})
    with pytest.raises(ConfigError, match="BACKUP_ALERT_EMAIL_TO is empty"):
        AlertSettings.from_env({"BACKUP_ALERT_CHANNELS": "email"})
    with pytest.raises(ConfigError, match="BACKUP_DEADLINE_HOURS='soon'"):
        AlertSettings.from_env({"BACKUP_DEADLINE_HOURS": "soon"})
    with pytest.raises(ConfigError, match="notification_type 'urgent'"):
        Alert(title="x", notification_type="urgent", error="y")
