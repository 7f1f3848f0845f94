"""Admin alerts: settings, secret-free message formatting, and the admin notifications table."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import ConfigError

NOTIFICATION_TYPES = ("info", "warning", "critical")
MASK = "********"

_SECRET_KEYS = (r"password|passwd|pwd|secret|secret_access_key|aws_secret_access_key|token|"
                r"api_key|apikey|access_token|private_key")
_KEY_VALUE = re.compile(
    rf"""(?ix)\b(?P<key>(?:pg)?(?:{_SECRET_KEYS}))(?P<quote>["']?)(?P<sep>\s*[=:]\s*)
    (?P<value>"[^"]*"|'[^']*'|[^\s,;&"'}})]+)""")
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^\s:/@]*):[^\s@/]+@",
                           re.IGNORECASE)
_SLACK_HOOK = re.compile(r"(hooks\.slack\.com/services/)\S+", re.IGNORECASE)


def redact(text: str) -> str:
    """Mask anything password-like: ``password=...``, ``"token": "..."``, ``://user:pass@``."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['quote']}{m['sep']}{MASK}", text)
    return _SLACK_HOOK.sub(rf"\1{MASK}", text)


@dataclass(frozen=True)
class Alert:
    """One thing an admin must hear about.

    :param title: one line, e.g. ``daily_backup: backup failed``
    :param notification_type: ``info``, ``warning`` or ``critical``
    :param error: what went wrong (redacted again before it is sent); empty for news that is
        not a failure (an approval waiting, a failure resolved)
    :param dag_id: Airflow DAG, if any
    :param task_id: Airflow task (with ``[map_index]`` for mapped tasks), if any
    :param run_id: Airflow run, if any
    :param target: backup target, if known
    :param backup_id: backup id, if known
    :param log_url: where the log is
    :param details: further lines (health results ...)
    """

    title: str
    notification_type: str
    error: str
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    target: str | None = None
    backup_id: str | None = None
    log_url: str | None = None
    details: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_notification_type(self.notification_type)


@dataclass(frozen=True)
class FormattedAlert:
    """An alert rendered for people: a subject line, plain text and HTML."""

    subject: str
    text: str

    @property
    def html(self) -> str:
        return f"<pre>{html.escape(self.text)}</pre>"


def format_alert(alert: Alert) -> FormattedAlert:
    """Subject and text naming the DAG, task, target, backup id, error and log URL (the ones
    the alert has); redacted."""
    rows = [("DAG", alert.dag_id), ("Task", alert.task_id), ("Run", alert.run_id),
            ("Target", alert.target), ("Backup id", alert.backup_id),
            ("Error", alert.error), ("Log", alert.log_url)]
    lines = [f"[{alert.notification_type.upper()}] {alert.title}"]
    lines += [f"{name}: {value}" for name, value in rows if value]
    lines += list(alert.details)
    subject = f"[amprenta-backup {alert.notification_type}] {alert.title}"
    return FormattedAlert(subject=redact(subject)[:200], text=redact("\n".join(lines)))


def check_notification_type(value: str) -> str:
    if value not in NOTIFICATION_TYPES:
        raise ConfigError(f"notification_type {value!r} is not one of "
                          f"{', '.join(NOTIFICATION_TYPES)}")
    return value


def create_admin_notification(catalog: Catalog, title: str, message: str,
                              notification_type: str) -> int:
    """Store a notification for the admins (the spec's call); returns its id.

    Title and message are redacted before they are stored.
    """
    check_notification_type(notification_type)
    with catalog.cursor() as cur:
        cur.execute("INSERT INTO admin_notifications (title, message, notification_type) "
                    "VALUES (%s, %s, %s) RETURNING id",
                    (redact(title)[:500], redact(message), notification_type))
        row = cur.fetchone()
    assert row is not None
    return int(row["id"])


def list_admin_notifications(catalog: Catalog, limit: int = 50) -> list[dict[str, Any]]:
    """The newest notifications first."""
    with catalog.cursor() as cur:
        cur.execute("SELECT * FROM admin_notifications ORDER BY id DESC LIMIT %s", (limit,))
        return list(cur.fetchall())


def remember_failure(catalog: Catalog, dag_id: str, run_id: str | None, title: str) -> None:
    """Note that ``dag_id``'s last alert was a failure (its next good run resolves it)."""
    catalog.upsert("alert_state", {"id": dag_id, "run_id": run_id,
                                   "title": redact(title)[:500]})


def forget_failure(catalog: Catalog, dag_id: str) -> dict[str, Any] | None:
    """The failure of ``dag_id`` a good run resolves (and forget it); None if there was none."""
    with catalog.cursor() as cur:
        cur.execute("DELETE FROM alert_state WHERE id = %s RETURNING run_id, title, failed_at",
                    (dag_id,))
        row = cur.fetchone()
    return dict(row) if row else None
