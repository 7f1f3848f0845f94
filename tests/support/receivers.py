"""Real receivers for alert tests: a Slack webhook endpoint (HTTP) and an SMTP server."""

from __future__ import annotations

import email
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import pytest
from aiosmtpd.controller import Controller

WEBHOOK_TOKEN = "T0AMPRENTA/B0BACKUP/xoxbSecretWebhookToken"


class _Receiver:
    """Serves in the background between ``__enter__`` and ``__exit__``."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class SlackReceiver(_Receiver):
    """An HTTP server on 127.0.0.1 that answers like Slack's Incoming Webhooks ("ok") and
    records every JSON payload posted to it, with its path."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def texts(self) -> list[str]:
        return [payload.get("text", "") for _path, payload in self.posts]

    def connection_json(self) -> str:
        """An Airflow ``slackwebhook`` connection whose host is this server."""
        return json.dumps({"conn_type": "slackwebhook", "host": self.url,
                           "password": WEBHOOK_TOKEN})

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class SmtpReceiver(_Receiver):
    """aiosmtpd's SMTP server on 127.0.0.1 that keeps every message it accepts."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._inbox = _Inbox()
        self._controller = Controller(self._inbox, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return self._inbox.messages

    @property
    def recipients(self) -> list[list[str]]:
        return self._inbox.recipients

    def body(self, message: EmailMessage) -> str:
        part = message.get_body(("html", "plain"))
        return part.get_content() if part is not None else ""

    def connection_json(self, from_email: str = "airflow@example.com") -> str:
        """An Airflow ``smtp`` connection to this server (plain SMTP, no login)."""
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                           "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10,
                                     "retry_limit": 0, "from_email": from_email}})

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages once ``count`` have arrived (delivery is asynchronous)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


@contextmanager
def alert_receivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SlackReceiver,
                                                                        SmtpReceiver]]:
    """Both receivers running, with the connections and BACKUP_ALERT_* settings that send
    every alert to them and to the admin table."""
    with SlackReceiver() as slack, SmtpReceiver() as smtp:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack.connection_json())
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_ALERTS", smtp.connection_json())
        monkeypatch.setenv("BACKUP_ALERT_CHANNELS", "slack,email,table")
        monkeypatch.setenv("BACKUP_SLACK_CONN_ID", "slack_alerts")
        monkeypatch.setenv("BACKUP_SMTP_CONN_ID", "smtp_alerts")
        monkeypatch.setenv("BACKUP_ALERT_EMAIL_TO", "ops@example.com")
        yield slack, smtp
