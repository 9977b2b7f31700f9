"""Work abandoned by a lost run is put right, and live work is left alone."""

from __future__ import annotations

from datetime import timedelta

from dicom_ops.db.models import Job, Series, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.jobs.claims import claim_ready_series
from dicom_ops.jobs.recovery import fail_abandoned_jobs, release_stale_series_claims
from sqlalchemy import select

from tests.support.jobs import add_series, job_in_status

LATER = timedelta(hours=8)


def test_a_series_claimed_by_a_lost_run_is_ready_again_after_the_stale_period(db_url):
    with session_scope(db_url) as session:
        series_id = add_series(session, state="ready")
    assert claim_ready_series(db_url, 10) == [series_id]

    assert release_stale_series_claims(db_url) == []  # a fresh claim is someone's work
    released = release_stale_series_claims(db_url, now=utcnow() + timedelta(hours=1))

    assert released == [series_id]
    with session_scope(db_url) as session:
        assert session.get(Series, series_id).state == "ready"


def _job_with_transfer(db_url, transfer_status: str | None) -> int:
    with session_scope(db_url) as session:
        job_id = job_in_status(session, "processing")
        if transfer_status:
            session.add(Transfer(job_id=job_id, status=transfer_status))
    return job_id


def test_a_job_stuck_before_upload_fails_with_a_reason_that_says_resend(db_url):
    job_id = _job_with_transfer(db_url, "pending")

    assert fail_abandoned_jobs(db_url, older_than=timedelta(hours=7)) == []
    failed = fail_abandoned_jobs(db_url, older_than=timedelta(hours=7), now=utcnow() + LATER)

    assert failed == [job_id]
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.stage) == ("failed", "recovery")
        assert "resend the job" in job.error


def test_a_job_stuck_mid_upload_fails_asking_for_a_server_check(db_url):
    job_id = _job_with_transfer(db_url, "uploading")

    fail_abandoned_jobs(db_url, older_than=timedelta(hours=7), now=utcnow() + LATER)

    with session_scope(db_url) as session:
        assert "check the DRAW server" in session.get(Job, job_id).error
        assert session.scalars(select(Transfer.status)).one() == "failed"


def test_a_job_the_server_is_working_on_is_left_to_the_import(db_url):
    job_id = _job_with_transfer(db_url, "sent")

    assert fail_abandoned_jobs(db_url, older_than=timedelta(hours=7),
                               now=utcnow() + LATER) == []
    with session_scope(db_url) as session:
        assert session.get(Job, job_id).status == "processing"
