"""Notifications through Airflow's notifier mechanism: a webhook and e-mail.

Two notifiers, both ``BaseNotifier`` subclasses, so they sit in ``on_failure_callback``
lists like any provider's notifier:

- ``WebhookNotifier`` POSTs JSON to the HTTP connection ``DICOM_OPS_NOTIFY_WEBHOOK_CONN``:
  URL from host (a bare host, or a full ``https://...`` URL), port, schema (``http`` or
  ``https``; default https) and extra ``path``; password = bearer token; extra
  ``headers`` (a JSON object) are added and extra ``verify`` is as for ``draw_default``.
- ``EmailNotifier`` sends the same facts through the SMTP provider's ``SmtpNotifier``
  (connection ``DICOM_OPS_NOTIFY_SMTP_CONN``, default ``smtp_default``; its extra
  ``from_email`` is the sender) to ``DICOM_OPS_NOTIFY_EMAIL_TO``.

As a failure callback (``job_failure_notifiers``) a notifier reads the failed job's
stage and reason from its row in the app DB, by the task's ``job_id``: the job is
marked failed by the callback before it (``JobStepOperator``), so the row is the truth,
and a task without a job (``plan_jobs``, ``poll_draw``) sends nothing. The watchdog
(``draw_watchdog``) calls ``announce`` for what it finds. Either way a notice goes out
once per channel and is recorded as a ``notified`` audit event
(``dicom_ops.pipeline.watchdog``). Payloads carry ids, stage, reason and a link: never
a patient identifier.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import requests
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseHook, BaseNotifier, Context
from airflow.sdk.configuration import conf

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.config import Settings
from dicom_ops.db.session import session_scope
from dicom_ops.pipeline.watchdog import Notice, failed_job_notice, record_notified, was_notified

WEBHOOK_TIMEOUT_SECONDS = 10
# Links to a stuck or failed job open the export run that claimed it: its grid shows the
# job's tasks. The DAG id is wiring knowledge, kept here once.
EXPORT_DAG_ID = "draw_export"


class NotificationError(Exception):
    """A notification could not be sent; the message names the channel, never a patient."""


def ui_link(path: str) -> str:
    """A link into the Airflow UI, on the base URL Airflow uses for its own log links
    (``[api] base_url``, ``AIRFLOW__API__BASE_URL``)."""
    base = conf.get("api", "base_url", fallback="http://localhost:8080/")
    return f"{base.rstrip('/')}/{path.lstrip('/')}"


def notice_link(notice: Notice, context: Context) -> str | None:
    """Where a person starts looking: the job's export run, else this task's log."""
    if notice.job_run_id:
        return ui_link(f"dags/{EXPORT_DAG_ID}/runs/{quote(notice.job_run_id, safe='')}")
    return getattr(context.get("ti"), "log_url", None)


class DicomOpsNotifier(BaseNotifier):
    """A channel: ``send`` delivers one notice; the rest (which job, once only) is here."""

    channel = "none"

    def notify(self, context: Context) -> None:
        """As an ``on_failure_callback``: tell about the failed job of this task, if any."""
        job_id = getattr(context.get("task"), "job_id", None)
        if job_id is None:
            return
        with session_scope(task_settings().db_url) as session:
            notice = failed_job_notice(session, int(job_id))
            if notice is None or was_notified(session, notice, self.channel):
                return
        # the failing task's own log shows the error and its retries
        self.announce(notice, context, link=getattr(context.get("ti"), "log_url", None))

    def announce(self, notice: Notice, context: Context, *, link: str | None) -> None:
        """Send ``notice`` and remember it was sent (a failed send is not remembered)."""
        dag_run = context.get("dag_run")
        dag_id = getattr(context.get("dag"), "dag_id", None)
        payload = notice.payload(link=link, dag_id=dag_id,
                                 run_id=getattr(dag_run, "run_id", None))
        self.send(notice, payload, context)
        with session_scope(task_settings().db_url) as session:
            record_notified(session, notice, self.channel, actor=dag_id or "notifier")
        self.log.info("notified %s via %s", notice.subject, self.channel)

    def send(self, notice: Notice, payload: dict[str, Any], context: Context) -> None:
        raise NotImplementedError


class WebhookNotifier(DicomOpsNotifier):
    """POST the notice as JSON to the webhook connection."""

    channel = "webhook"

    def __init__(self, *, conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def send(self, notice: Notice, payload: dict[str, Any], context: Context) -> None:
        url, headers, verify = webhook_target(self.conn_id)
        try:
            response = requests.post(url, json=payload, headers=headers, verify=verify,
                                     timeout=WEBHOOK_TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            raise NotificationError(f"webhook {self.conn_id}: cannot reach it "
                                    f"({type(exc).__name__})") from None
        if response.status_code >= 300:
            raise NotificationError(f"webhook {self.conn_id} answered {response.status_code}")


def webhook_target(conn_id: str) -> tuple[str, dict[str, str], bool | str]:
    """URL, headers and TLS verification from the webhook's Airflow connection."""
    connection = BaseHook.get_connection(conn_id)
    if not connection.host:
        raise NotificationError(f"Airflow connection {conn_id!r} has no host")
    extra: dict[str, Any] = connection.extra_dejson
    host = connection.host.rstrip("/")
    if "://" not in host:
        port = f":{connection.port}" if connection.port else ""
        host = f"{connection.schema or 'https'}://{host}{port}"
    path = str(extra.get("path", "")).lstrip("/")
    headers = {str(k): str(v) for k, v in dict(extra.get("headers") or {}).items()}
    if connection.password:
        headers.setdefault("Authorization", f"Bearer {connection.password}")
    return f"{host}/{path}", headers, extra.get("verify", True)


class EmailNotifier(DicomOpsNotifier):
    """The notice by e-mail, through the SMTP provider's ``SmtpNotifier``."""

    channel = "email"

    def __init__(self, *, to: Sequence[str], smtp_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.to = list(to)
        self.smtp_conn_id = smtp_conn_id

    def send(self, notice: Notice, payload: dict[str, Any], context: Context) -> None:
        # `notify`, not `__call__`: the body is ours, already final, never a Jinja template
        SmtpNotifier(to=self.to, subject=notice.subject, html_content=email_body(payload),
                     smtp_conn_id=self.smtp_conn_id).notify(context)


def email_body(payload: dict[str, Any]) -> str:
    """The e-mail: the payload's facts, one per line (HTML, escaped)."""
    rows = "".join(f"<tr><th align=left>{html.escape(key)}</th>"
                   f"<td>{html.escape(str(value))}</td></tr>"
                   for key, value in payload.items() if value is not None)
    link = payload.get("link")
    anchor = (f'<p><a href="{html.escape(link, quote=True)}">Open in Airflow</a></p>'
              if link else "")
    return f"<table>{rows}</table>{anchor}"


def notifiers(settings: Settings) -> list[DicomOpsNotifier]:
    """The channels the settings switch on (none: an empty list)."""
    found: list[DicomOpsNotifier] = []
    if settings.notify_webhook_conn:
        found.append(WebhookNotifier(conn_id=settings.notify_webhook_conn))
    if settings.notify_email_to:
        found.append(EmailNotifier(to=settings.notify_email_to,
                                   smtp_conn_id=settings.notify_smtp_conn))
    return found


def job_failure_notifiers(settings: Settings) -> list[BaseNotifier]:
    """For a DAG's ``default_args["on_failure_callback"]``: tell about a failed job."""
    return list(notifiers(settings))
