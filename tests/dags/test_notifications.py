"""Notifications through `dag.test()`: a failed job is told by webhook and e-mail, once;
the watchdog tells stuck jobs and an unreachable DRAW server, once each."""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta

from dicom_ops.airflow.notifiers import EmailNotifier, WebhookNotifier
from dicom_ops.airflow.operators.jobs import JobStepOperator, _fail_job_after_last_retry
from dicom_ops.db.models import Event, Job, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.pipeline.watchdog import CONTACT_BACK, CONTACT_LOST, NOTIFIED
from sqlalchemy import select, update

from tests.dags.conftest import load_dag
from tests.factories import synthetic_patient, with_burned_in_annotation, write_series
from tests.support import notify
from tests.support.jobs import job_in_status
from tests.support.notify import RECIPIENTS, SENDER, WEBHOOK_TOKEN
from tests.support.pipeline import ready_series_on_disk

# the loopback webhook receiver and SMTP server, and the settings that point at them
notify_env, webhook_receiver, smtp_receiver = (notify.notify_env, notify.webhook_receiver,
                                               notify.smtp_receiver)
PATIENT = 21


def _phi(index: int) -> list[str]:
    patient = synthetic_patient(index)
    return [patient.family_name, patient.given_name, patient.patient_id, patient.accession,
            patient.birth_date]


def _notified(db_url: str) -> list[tuple[int | None, str]]:
    with session_scope(db_url) as session:
        return [(e.job_id, e.message) for e in session.scalars(
            select(Event).where(Event.kind == NOTIFIED).order_by(Event.id))]


def test_a_failed_job_is_told_once_by_webhook_and_e_mail_without_patient_data(
        pipeline_env, notify_env, webhook_receiver, smtp_receiver):
    settings = pipeline_env
    # given a series with burned-in annotation (a permanent failure at de-identification)
    ready = ready_series_on_disk(settings, patient_index=PATIENT)
    write_series([with_burned_in_annotation(ready.datasets[0])], ready.folder)

    # when the export runs
    run = load_dag("draw_export").test()

    # then the job failed, and exactly one POST and one e-mail say so
    assert run.state == "failed"
    with session_scope(settings.db_url) as session:
        job = session.scalars(select(Job)).one()
        assert job.status == "failed" and job.stage == "deidentify"
        job_id = job.id
    assert len(webhook_receiver.requests) == 1
    request = webhook_receiver.requests[0]
    assert request["path"] == "/hooks/dicom-ops"
    assert request["headers"]["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    assert request["headers"]["X-Source"] == "dicom-ops-test"
    body = json.loads(request["body"])
    assert body["event"] == "job_failed"
    assert body["job_id"] == job_id and body["stage"] == "deidentify"
    assert "burned-in annotation" in body["reason"]
    assert body["dag_id"] == "draw_export" and body["run_id"] == run.run_id
    assert body["link"].startswith("http") and "/dags/draw_export/runs/" in body["link"]
    assert len(smtp_receiver.messages) == 1
    message = smtp_receiver.messages[0]
    assert smtp_receiver.envelopes[0] == (SENDER, list(RECIPIENTS))
    assert message["Subject"] == f"dicom-ops: job {job_id} failed at deidentify"
    mail_text = smtp_receiver.text(message)
    assert "burned-in annotation" in mail_text and str(job_id) in mail_text
    # and no patient identifier is in either
    for value in _phi(PATIENT):
        assert value.lower() not in request["body"].lower()
        assert value.lower() not in mail_text.lower()
    assert _notified(settings.db_url) == [(job_id, "job_failed via webhook"),
                                          (job_id, "job_failed via email")]

    # when the watchdog runs later, it does not tell the same failure again
    with session_scope(settings.db_url) as session:
        session.execute(update(Job).values(finished_at=utcnow() - timedelta(minutes=30)))
    assert load_dag("draw_watchdog").test().state == "success"
    assert len(webhook_receiver.requests) == 1 and len(smtp_receiver.messages) == 1


def test_the_watchdog_tells_a_stuck_job_once(pipeline_env, notify_env, webhook_receiver,
                                              smtp_receiver):
    settings = pipeline_env
    # given a job processing with no activity for longer than the stuck threshold
    with session_scope(settings.db_url) as session:
        job_id = job_in_status(session, "processing")
        session.execute(update(Job).where(Job.id == job_id).values(
            updated_at=utcnow() - timedelta(minutes=settings.notify_stuck_minutes + 5)))

    # when the watchdog runs twice
    first = load_dag("draw_watchdog").test()
    second = load_dag("draw_watchdog").test()

    # then it told once, on each channel
    assert first.state == second.state == "success"
    assert [b["event"] for b in webhook_receiver.bodies()] == ["job_stuck"]
    body = webhook_receiver.bodies()[0]
    assert body["job_id"] == job_id and body["stage"] == "claimed"
    assert "no activity" in body["reason"]
    assert [m["Subject"] for m in smtp_receiver.messages] == [
        f"dicom-ops: job {job_id} stuck at claimed"]


def test_the_watchdog_tells_an_unreachable_draw_server_once_per_outage(
        pipeline_env, notify_env, webhook_receiver, smtp_receiver, draw_emulator, monkeypatch):
    settings = pipeline_env
    reachable_conn = os.environ["AIRFLOW_CONN_DRAW_DEFAULT"]
    # given the DRAW server does not answer (nothing listens on its port)
    down = json.loads(reachable_conn)
    down["port"] = _closed_port()
    monkeypatch.setenv("AIRFLOW_CONN_DRAW_DEFAULT", json.dumps(down))
    watchdog = load_dag("draw_watchdog")

    # when the watchdog sees it first, nothing is told yet: the outage just began
    assert watchdog.test().state == "success"
    assert webhook_receiver.requests == [] and smtp_receiver.messages == []
    # when it has lasted longer than the setting
    _age_events(settings.db_url, CONTACT_LOST,
                timedelta(minutes=settings.notify_draw_unreachable_minutes + 1))
    watchdog.test()
    watchdog.test()

    # then it is told once per channel
    assert [b["event"] for b in webhook_receiver.bodies()] == ["draw_unreachable"]
    body = webhook_receiver.bodies()[0]
    assert body["job_id"] is None and "has not answered" in body["reason"]
    assert [m["Subject"] for m in smtp_receiver.messages] == [
        "dicom-ops: DRAW server unreachable"]

    # when the server answers again, and later fails again for long, that is a new outage
    monkeypatch.setenv("AIRFLOW_CONN_DRAW_DEFAULT", reachable_conn)
    watchdog.test()
    _age_events(settings.db_url, None, timedelta(hours=1))
    monkeypatch.setenv("AIRFLOW_CONN_DRAW_DEFAULT", json.dumps(down))
    watchdog.test()
    _age_events(settings.db_url, CONTACT_LOST,
                timedelta(minutes=settings.notify_draw_unreachable_minutes + 1), latest=True)
    watchdog.test()
    assert [b["event"] for b in webhook_receiver.bodies()] == ["draw_unreachable"] * 2
    with session_scope(settings.db_url) as session:
        kinds = session.scalars(select(Event.kind).where(
            Event.kind.in_((CONTACT_LOST, CONTACT_BACK))).order_by(Event.id)).all()
    assert kinds == [CONTACT_LOST, CONTACT_BACK, CONTACT_LOST]


def test_a_job_failed_by_the_poll_is_told_by_the_watchdog(pipeline_env, notify_env,
                                                          webhook_receiver, smtp_receiver,
                                                          draw_emulator):
    settings = pipeline_env
    # given a job the server failed (the poll marks it failed; no task of it fails)
    ready_series_on_disk(settings, patient_index=PATIENT + 1)
    draw_emulator.set_faults(fail_next=1)
    assert load_dag("draw_export").test().state == "success"
    with session_scope(settings.db_url) as session:
        transfer_task = session.scalars(select(Job)).one().transfer.server_task_id
    draw_emulator.wait_for_status(transfer_task)
    load_dag("draw_import").test()
    with session_scope(settings.db_url) as session:
        job = session.scalars(select(Job)).one()
        assert job.status == "failed"
        job_id = job.id
        # a few minutes pass: the failing task's callback had its chance
        session.execute(update(Job).values(finished_at=utcnow() - timedelta(minutes=5)))
    assert webhook_receiver.requests == []

    # when the watchdog runs twice
    load_dag("draw_watchdog").test()
    load_dag("draw_watchdog").test()

    # then the failure is told once per channel, with the export run's link
    assert [(b["event"], b["job_id"]) for b in webhook_receiver.bodies()] == [
        ("job_failed", job_id)]
    assert "/dags/draw_export/runs/" in webhook_receiver.bodies()[0]["link"]
    assert len(smtp_receiver.messages) == 1
    for value in _phi(PATIENT + 1):
        assert value.lower() not in webhook_receiver.requests[0]["body"].lower()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _age_events(db_url: str, kind: str | None, by: timedelta, *, latest: bool = False) -> None:
    """Move events of ``kind`` (None: all) back in time, as if they had happened ``by``
    earlier: the watchdog runs on the clock, and a test cannot wait for it."""
    with session_scope(db_url) as session:
        query = select(Event).order_by(Event.id.desc())
        events = session.scalars(query if kind is None else query.where(Event.kind == kind)
                                 ).all()
        for event in events[:1] if latest else events:
            event.at = event.at - by



def test_every_per_job_step_marks_the_job_failed_before_the_notifiers_run(dag_settings_env,
                                                                          notify_env):
    # given the real DAGs with both channels on
    for dag_id in ("draw_export", "draw_import"):
        dag = load_dag(dag_id)
        steps = [task for task in dag.tasks
                 if issubclass(getattr(task, "operator_class", type(task)), JobStepOperator)]
        assert steps, dag_id
        for task in steps:
            # when the task is made for one job, as a worker makes it (mapped or not)
            operator = task.unmap({"job_id": 7}) if hasattr(task, "unmap") else task
            # then marking the job failed comes first, the notifiers after it
            callbacks = operator.on_failure_callback
            assert callbacks[0] is _fail_job_after_last_retry, task.task_id
            assert [type(c) for c in callbacks[1:]] == [WebhookNotifier, EmailNotifier]
