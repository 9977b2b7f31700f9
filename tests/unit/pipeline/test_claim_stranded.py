"""Which jobs a run takes over from a lost one: quiet for an interval and without an answer
from the server (an upload whose outcome is unknown is tried again, within its bound);
never a job the server has taken, never a job someone is working on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dicom_ops.db.audit import NOTIFIED_EVENT, record_event
from dicom_ops.db.models import Event, Job
from dicom_ops.db.session import session_scope
from dicom_ops.draw import transfer_lifecycle
from dicom_ops.draw.transfer_lifecycle import TransferStatus
from dicom_ops.pipeline.export import prepare_upload
from dicom_ops.pipeline.plan import claim_jobs, plan_export
from sqlalchemy import select

from tests.support.pipeline import ready_series_on_disk
from tests.support.stranded import LOST_RUN, age_job, claim_in_a_lost_run

INTERVAL = timedelta(minutes=10)


@pytest.fixture
def lost_jobs(settings):
    for index in (40, 41, 42):
        ready_series_on_disk(settings, patient_index=index)
    return claim_in_a_lost_run(settings)


def test_quiet_jobs_before_the_server_come_first_then_queued_ones(settings, lost_jobs):
    first, second, _recent = lost_jobs
    prepare_upload(settings, second)
    for job_id in (first, second):
        age_job(settings, job_id, by=2 * INTERVAL)
    ready_series_on_disk(settings, patient_index=43)
    (queued,) = plan_export(settings).created_jobs

    taken = claim_jobs(settings.db_url, worker="run 2", max_jobs=10, stranded_after=INTERVAL)

    assert taken == [first, second, queued]
    with session_scope(settings.db_url) as session:
        assert session.get(Job, first).claimed_by == "run 2"
        resumed = session.scalars(select(Event.message).where(Event.kind == "resumed")).all()
    assert resumed == [f"resumed by run run 2 at stage claimed (left by {LOST_RUN})",
                       f"resumed by run run 2 at stage package (left by {LOST_RUN})"]


def _move_transfer(settings, job_id, moves):
    prepare_upload(settings, job_id)
    with session_scope(settings.db_url) as session:
        for status in moves:
            transfer_lifecycle.move(session, transfer_lifecycle.locked(session, job_id), status)
    age_job(settings, job_id, by=2 * INTERVAL)


def test_an_upload_the_server_took_is_not_taken(settings, lost_jobs):
    sent = lost_jobs[1]
    _move_transfer(settings, sent, [TransferStatus.UPLOADING, TransferStatus.SENT])

    assert claim_jobs(settings.db_url, worker="run 2", max_jobs=10,
                      stranded_after=INTERVAL) == []


def test_an_upload_with_unknown_outcome_left_by_a_lost_run_is_resumed(settings, lost_jobs):
    uploading = lost_jobs[0]
    _move_transfer(settings, uploading, [TransferStatus.UPLOADING])

    taken = claim_jobs(settings.db_url, worker="run 2", max_jobs=10, stranded_after=INTERVAL)

    assert taken == [uploading]


def test_telling_a_person_about_a_job_is_not_activity_on_it(settings, lost_jobs):
    job_id = lost_jobs[0]
    age_job(settings, job_id, by=2 * INTERVAL)
    with session_scope(settings.db_url) as session:
        record_event(session, NOTIFIED_EVENT, "job_stuck via webhook", job_id=job_id,
                     actor="draw_watchdog")

    taken = claim_jobs(settings.db_url, worker="run 2", max_jobs=10, stranded_after=INTERVAL)

    assert taken == [job_id]


def test_a_recent_event_is_activity_even_when_the_job_row_is_old(settings, lost_jobs):
    job_id = lost_jobs[0]
    age_job(settings, job_id, by=2 * INTERVAL)
    with session_scope(settings.db_url) as session:
        record_event(session, "packed", "6 images", job_id=job_id, actor="draw_export")

    taken = claim_jobs(settings.db_url, worker="run 2", max_jobs=10, stranded_after=INTERVAL)

    assert job_id not in taken
