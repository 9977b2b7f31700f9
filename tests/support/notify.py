"""Real peers for notification tests, on loopback: a webhook receiver (http.server in a
thread) and an SMTP server (aiosmtpd), each recording what it got.

Fixtures ``webhook_receiver`` and ``smtp_receiver`` (import them into the test module),
and ``notify_env`` to point the settings and Airflow connections at both.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

WEBHOOK_CONN = "notify_webhook"
SMTP_CONN = "notify_smtp"
RECIPIENTS = ("physics@hospital.test", "oncall@hospital.test")
SENDER = "dicom-ops@hospital.test"
WEBHOOK_TOKEN = "webhook-test-token"


@dataclass
class WebhookReceiver:
    server: ThreadingHTTPServer
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 204  # what it answers; a test may make it fail

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                      "body": body.decode()})
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(server=None)  # type: ignore[arg-type]
    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@dataclass
class SmtpReceiver:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    def text(self, message: email.message.EmailMessage) -> str:
        """Subject, headers and every part's content: what a leak check must read."""
        parts = [str(message["Subject"])]
        parts += [part.get_content() for part in message.walk()
                  if part.get_content_maintype() == "text"]
        return "\n".join(parts)


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.receiver.messages.append(message)
        self.receiver.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(port=_free_port())
    controller = Controller(_Handler(receiver), hostname="127.0.0.1", port=receiver.port)
    controller.start()
    yield receiver
    controller.stop()


@pytest.fixture
def notify_env(webhook_receiver, smtp_receiver, monkeypatch) -> None:
    """Both channels on: settings and connections (plain SMTP on loopback, no TLS)."""
    monkeypatch.setenv("DICOM_OPS_NOTIFY_WEBHOOK_CONN", WEBHOOK_CONN)
    monkeypatch.setenv("DICOM_OPS_NOTIFY_EMAIL_TO", ",".join(RECIPIENTS))
    monkeypatch.setenv("DICOM_OPS_NOTIFY_SMTP_CONN", SMTP_CONN)
    monkeypatch.setenv(f"AIRFLOW_CONN_{WEBHOOK_CONN.upper()}", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": webhook_receiver.port,
        "schema": "http", "password": WEBHOOK_TOKEN,
        "extra": {"path": "/hooks/dicom-ops", "headers": {"X-Source": "dicom-ops-test"}},
    }))
    monkeypatch.setenv(f"AIRFLOW_CONN_{SMTP_CONN.upper()}", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_receiver.port,
        "extra": {"from_email": SENDER, "disable_ssl": True, "disable_tls": True,
                  "retry_limit": 0, "timeout": 10},
    }))
