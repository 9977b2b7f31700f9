"""Uploading against a server that misbehaves: every attempt is recorded, and a job is
uploaded again only when the last attempt provably failed or its outcome is unknown."""

from __future__ import annotations

import time

import pytest
from dicom_ops.db.models import Job, Transfer, UploadAttempt
from dicom_ops.db.session import session_scope
from dicom_ops.draw import transfer_lifecycle
from dicom_ops.draw.errors import DrawBusy, DrawTransientError
from dicom_ops.jobs.claims import claim_next_job
from dicom_ops.jobs.planning import plan_ready_series
from dicom_ops.pipeline.export import prepare_upload, upload_prepared
from dicom_ops.templates import load_templates
from sqlalchemy import select

from tests.support.pipeline import ready_series_on_disk


@pytest.fixture
def packed_job(settings) -> int:
    ready_series_on_disk(settings, patient_index=21)
    plan_ready_series(settings.db_url, load_templates(settings.templates_dir))
    job_id = claim_next_job(settings.db_url, "test")
    prepare_upload(settings, job_id)
    return job_id


def _transfer(settings) -> Transfer:
    with session_scope(settings.db_url) as session:
        return session.scalars(select(Transfer)).one()


def test_a_500_leaves_the_job_pending_and_the_retry_uploads_exactly_once(
        settings, draw_emulator, packed_job):
    client = draw_emulator.client()
    draw_emulator.set_faults(error_every=2)  # health passes, the upload itself gets 500
    with pytest.raises(DrawTransientError):
        upload_prepared(settings, packed_job, client)
    assert _transfer(settings).status == "pending"
    draw_emulator.clear_faults()
    before = len(draw_emulator.tasks())

    task_id = upload_prepared(settings, packed_job, client)

    assert len(draw_emulator.tasks()) == before + 1
    transfer = _transfer(settings)
    assert (transfer.status, transfer.server_task_id, transfer.upload_attempts) == (
        "sent", task_id, 2)


def test_an_expired_access_token_is_refreshed_once_and_the_upload_goes_through(
        settings, draw_emulator, packed_job):
    client = draw_emulator.client()
    original_token = client.access_token
    draw_emulator.set_faults(token_expiry=1)
    time.sleep(1.5)  # the client's token is now expired; a refreshed one lives 1 s

    upload_prepared(settings, packed_job, client)

    assert client.access_token != original_token
    assert _transfer(settings).status == "sent"


def test_a_busy_server_leaves_the_job_waiting_not_failed(settings, draw_emulator, packed_job):
    draw_emulator.set_faults(busy=30)

    with pytest.raises(DrawBusy):
        upload_prepared(settings, packed_job, draw_emulator.client())

    assert _transfer(settings).status == "pending"
    with session_scope(settings.db_url) as session:
        assert session.get(Job, packed_job).status == "processing"


def test_a_worker_that_died_mid_upload_is_followed_by_another_recorded_attempt(
        settings, draw_emulator, packed_job):
    with session_scope(settings.db_url) as session:  # attempt 1 began; its worker died
        transfer_lifecycle.start_attempt(session, session.scalars(select(Transfer)).one())
    before = len(draw_emulator.tasks())

    task_id = upload_prepared(settings, packed_job, draw_emulator.client())

    assert len(draw_emulator.tasks()) == before + 1
    transfer = _transfer(settings)
    assert (transfer.status, transfer.server_task_id, transfer.upload_attempts) == (
        "sent", task_id, 2)
    with session_scope(settings.db_url) as session:
        assert [(a.number, a.outcome) for a in session.scalars(
            select(UploadAttempt).order_by(UploadAttempt.number))] == [
            (1, "unknown"), (2, "accepted")]
