"""The status machine: every (status, action) pair, on a real app DB (SQLite)."""

from __future__ import annotations

import pytest
from dicom_ops.db.models import JOB_STATUSES, Event, Job, Series
from dicom_ops.db.session import session_scope
from dicom_ops.jobs import (
    TRANSITIONS,
    TransitionRefused,
    cancel_job,
    fail_job,
    finish_job,
    invalidate_job,
    set_stage,
    start_job,
)
from sqlalchemy import select

from tests.support.jobs import job_in_status

ACTIONS = {
    "start": lambda s, i: start_job(s, i, worker="worker-1"),
    "finish": lambda s, i: finish_job(s, i, turnaround_seconds=42.0),
    "fail": lambda s, i: fail_job(s, i, stage="upload", error="HTTP 500 from server"),
    "cancel": lambda s, i: cancel_job(s, i, actor="cli"),
    "invalidate": lambda s, i: invalidate_job(s, i, actor="cli"),
}
ALLOWED = {
    ("in_queue", "start"): "processing",
    ("processing", "finish"): "finished",
    ("processing", "fail"): "failed",
    ("in_queue", "cancel"): "cancelled",
    ("finished", "invalidate"): "invalidated",
}


def test_the_machine_allows_exactly_the_documented_moves():
    assert {(source, action): target for action, (source, target) in TRANSITIONS.items()} \
        == ALLOWED


@pytest.mark.parametrize("status", JOB_STATUSES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_status_and_action(sqlite_url, status, action):
    # given a job that reached `status` the normal way
    with session_scope(sqlite_url) as session:
        job_id = job_in_status(session, status)
        events_before = len(session.scalars(select(Event).where(Event.job_id == job_id)).all())
    expected = ALLOWED.get((status, action))
    # when the action is applied
    if expected is None:
        with pytest.raises(TransitionRefused) as caught, session_scope(sqlite_url) as session:
            ACTIONS[action](session, job_id)
        # then it is refused naming the current status, and nothing changed
        assert f"job {job_id} is {status}: cannot {action} it" in str(caught.value)
        with session_scope(sqlite_url) as session:
            assert session.get(Job, job_id).status == status
            assert len(session.scalars(select(Event).where(Event.job_id == job_id)).all()) \
                == events_before
    else:
        with session_scope(sqlite_url) as session:
            ACTIONS[action](session, job_id)
        # then the job moved and the move is in the audit log
        with session_scope(sqlite_url) as session:
            assert session.get(Job, job_id).status == expected
            kinds = session.scalars(select(Event.kind).where(Event.job_id == job_id)
                                    .order_by(Event.id)).all()
            assert len(kinds) == events_before + 1


def test_a_failed_job_keeps_its_error_and_stage(sqlite_url):
    with session_scope(sqlite_url) as session:
        job_id = job_in_status(session, "processing")
        set_stage(session, job_id, "deidentify")
        fail_job(session, job_id, stage="egress check", error="PHI found in (0010,0010)")
    with session_scope(sqlite_url) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.stage, job.error) == (
            "failed", "egress check", "PHI found in (0010,0010)")
        assert job.finished_at is not None
        last = session.scalars(select(Event).where(Event.job_id == job_id)
                               .order_by(Event.id.desc())).first()
        assert (last.kind, last.message) == ("failed", "egress check: PHI found in (0010,0010)")


def test_starting_records_the_worker_and_finishing_the_turnaround(sqlite_url):
    with session_scope(sqlite_url) as session:
        job_id = job_in_status(session, "in_queue")
        start_job(session, job_id, worker="celery@host-3")
    with session_scope(sqlite_url) as session:
        job = session.get(Job, job_id)
        assert (job.claimed_by, job.stage) == ("celery@host-3", "claimed")
        assert job.started_at is not None
        finish_job(session, job_id)
    with session_scope(sqlite_url) as session:
        job = session.get(Job, job_id)
        series = session.scalars(select(Series)).one()
        assert job.turnaround_seconds == pytest.approx(
            (job.finished_at - series.ready_at).total_seconds())


def test_stages_are_only_for_processing_jobs(sqlite_url):
    with session_scope(sqlite_url) as session:
        job_id = job_in_status(session, "in_queue")
    with pytest.raises(TransitionRefused, match=f"job {job_id} is in_queue: only processing"), \
            session_scope(sqlite_url) as session:
        set_stage(session, job_id, "upload")
