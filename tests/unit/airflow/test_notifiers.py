"""The notifiers against a real webhook receiver and SMTP server on loopback: where the
webhook goes, what a failure callback sends (and when nothing), and that a send that
failed is not remembered as sent."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG
from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.notifiers import (
    EmailNotifier,
    NotificationError,
    WebhookNotifier,
    email_body,
    job_failure_notifiers,
    webhook_target,
)
from dicom_ops.config import get_settings
from dicom_ops.db.session import session_scope

from tests.conftest import settings_env
from tests.support import notify
from tests.support.jobs import job_in_status

# the loopback webhook receiver and SMTP server, and the settings that point at them
notify_env, webhook_receiver, smtp_receiver = (notify.notify_env, notify.webhook_receiver,
                                               notify.smtp_receiver)


@pytest.fixture
def task_env(settings, notify_env, monkeypatch):
    """The test's settings as a task sees them, with both channels on."""
    for key, value in settings_env(settings).items():
        if key.startswith("DICOM_OPS_"):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    task_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
    task_settings.cache_clear()


def _context(job_id: int | None) -> dict:
    """What Airflow hands a failure callback, reduced to what the notifiers read."""
    return {"task": SimpleNamespace(job_id=job_id), "dag": DAG("draw_export", schedule=None),
            "dag_run": SimpleNamespace(run_id="manual__1"),
            "ti": SimpleNamespace(log_url="http://ui/dags/draw_export/runs/manual__1/tasks/t")}


def _connection(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http",
                                                                      **fields}))


def test_the_webhook_url_comes_from_host_port_schema_and_path(monkeypatch):
    _connection(monkeypatch, "hook_a", host="hooks.example.test", port=8443, schema="https",
                password="s3cret", extra={"path": "/api/notify", "headers": {"X-Team": "rt"}})
    _connection(monkeypatch, "hook_b", host="https://chat.example.test/hooks/abc/",
                extra={"verify": False})
    _connection(monkeypatch, "hook_c", host="hooks.example.test")

    assert webhook_target("hook_a") == (
        "https://hooks.example.test:8443/api/notify",
        {"X-Team": "rt", "Authorization": "Bearer s3cret"}, True)
    assert webhook_target("hook_b") == ("https://chat.example.test/hooks/abc/", {}, False)
    assert webhook_target("hook_c")[0] == "https://hooks.example.test/"


def test_no_channel_is_on_by_default(settings):
    assert job_failure_notifiers(settings) == []


def test_a_failed_job_is_told_once_even_when_the_callback_runs_twice(task_env,
                                                                     webhook_receiver,
                                                                     smtp_receiver):
    with session_scope(task_env.db_url) as session:
        job_id = job_in_status(session, "failed")
    channels = job_failure_notifiers(task_env)
    assert [type(c) for c in channels] == [WebhookNotifier, EmailNotifier]

    for _ in range(2):
        for channel in channels:
            channel(_context(job_id))

    (body,) = webhook_receiver.bodies()
    assert body == {"event": "job_failed", "job_id": job_id, "stage": "upload",
                    "reason": "server said 500", "since": body["since"],
                    "link": "http://ui/dags/draw_export/runs/manual__1/tasks/t",
                    "dag_id": "draw_export", "run_id": "manual__1"}
    (message,) = smtp_receiver.messages
    assert message["Subject"] == f"dicom-ops: job {job_id} failed at upload"
    assert "server said 500" in smtp_receiver.text(message)


def test_a_task_without_a_job_or_a_job_that_did_not_fail_sends_nothing(task_env,
                                                                      webhook_receiver,
                                                                      smtp_receiver):
    with session_scope(task_env.db_url) as session:
        processing = job_in_status(session, "processing")
    for channel in job_failure_notifiers(task_env):
        channel(_context(None))  # plan_jobs, poll_draw: no job of their own
        channel(_context(processing))

    assert webhook_receiver.requests == [] and smtp_receiver.messages == []


def test_a_webhook_that_fails_is_not_remembered_so_the_next_try_sends(task_env,
                                                                     webhook_receiver):
    with session_scope(task_env.db_url) as session:
        job_id = job_in_status(session, "failed")
    (webhook, _email) = job_failure_notifiers(task_env)
    webhook_receiver.status = 500

    with pytest.raises(NotificationError, match="answered 500"):
        webhook(_context(job_id))
    webhook_receiver.status = 204
    webhook(_context(job_id))

    assert [b["job_id"] for b in webhook_receiver.bodies()] == [job_id, job_id]


def test_the_e_mail_body_is_escaped_html():
    body = email_body({"event": "job_failed", "reason": "<script>x</script>",
                       "link": 'http://ui/"x"', "stage": None})

    assert "<script>" not in body and "&lt;script&gt;" in body
    assert 'href="http://ui/&quot;x&quot;"' in body
    assert "stage" not in body
