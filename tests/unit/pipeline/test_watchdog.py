"""What the watchdog finds to tell, and that each thing is told once per channel."""

from __future__ import annotations

from datetime import timedelta

from dicom_ops.db.models import Event, Job, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.pipeline.watchdog import (
    CONTACT_BACK,
    CONTACT_LOST,
    Notice,
    NoticeEvent,
    draw_unreachable_since,
    due_notices,
    record_draw_contact,
    record_notified,
)
from sqlalchemy import select, update

from tests.support.jobs import job_in_status

STUCK = timedelta(minutes=60)
UNREACHABLE = timedelta(minutes=15)
UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"


def _due(session, channel="webhook", now=None):
    return due_notices(session, channel, stuck_after=STUCK, unreachable_after=UNREACHABLE,
                       now=now or utcnow())


def _set(session, job_id, **values):
    session.execute(update(Job).where(Job.id == job_id).values(**values))


def test_a_failed_job_is_due_after_the_grace_period_once_per_channel(db_url):
    with session_scope(db_url) as session:
        job_id = job_in_status(session, "failed")
    now = utcnow()
    with session_scope(db_url) as session:
        # just failed: the failing task's own callback tells it; the watchdog waits
        assert _due(session, now=now) == []
        later = now + timedelta(minutes=5)
        (notice,) = _due(session, now=later)
        assert (notice.event, notice.job_id, notice.stage) == (NoticeEvent.JOB_FAILED, job_id,
                                                               "upload")
        assert notice.reason == "server said 500"
        record_notified(session, notice, "webhook", actor="test")
        assert _due(session, "webhook", now=later) == []
        assert [n.job_id for n in _due(session, "email", now=later)] == [job_id]
        # old history is never told: a failure from the day before yesterday is not due
        assert _due(session, "email", now=now + timedelta(days=2)) == []


def test_only_jobs_nothing_has_moved_or_polled_are_stuck_once_per_episode(db_url):
    now = utcnow()
    with session_scope(db_url) as session:
        idle = job_in_status(session, "processing")
        polled = job_in_status(session, "processing")
        job_in_status(session, "processing")  # moved just now: not stuck
        for job_id in (idle, polled):
            _set(session, job_id, updated_at=now - STUCK - timedelta(minutes=1))
        # the import still polls this one at the server: waiting is not stuck
        session.add(Transfer(job_id=polled, status="sent", last_polled_at=now))
    with session_scope(db_url) as session:
        (notice,) = _due(session, now=now)
        assert (notice.event, notice.job_id) == (NoticeEvent.JOB_STUCK, idle)
        assert "no activity for more than 60 minutes" in notice.reason
        record_notified(session, notice, "webhook", actor="test")
    with session_scope(db_url) as session:
        assert _due(session, now=now + timedelta(minutes=5)) == []
        # it moves on, then sticks again: a new episode is told again
        _set(session, idle, updated_at=now + timedelta(minutes=10))
    with session_scope(db_url) as session:
        later = now + timedelta(minutes=10) + STUCK + timedelta(minutes=1)
        assert idle in [n.job_id for n in _due(session, now=later)]


def test_reachability_records_only_changes_and_an_outage_is_due_once(db_url):
    with session_scope(db_url) as session:
        for _ in range(3):
            record_draw_contact(session, reachable=True)
        assert draw_unreachable_since(session) is None
        for _ in range(3):
            record_draw_contact(session, reachable=False,
                                detail=f"DrawTransientError: cannot reach /{UID}/")
        since = draw_unreachable_since(session)
        assert since is not None
        kinds = session.scalars(select(Event.kind).where(
            Event.kind.in_((CONTACT_LOST, CONTACT_BACK)))).all()
        assert kinds == [CONTACT_LOST]  # a healthy server wrote nothing; the outage once
        assert _due(session, now=since + UNREACHABLE - timedelta(seconds=1)) == []
        (notice,) = _due(session, now=since + UNREACHABLE + timedelta(minutes=1))
        assert notice.event is NoticeEvent.DRAW_UNREACHABLE and notice.job_id is None
        assert UID not in notice.reason
        record_notified(session, notice, "email", actor="test")
        assert _due(session, "email", now=since + UNREACHABLE + timedelta(minutes=2)) == []
        record_draw_contact(session, reachable=True)
        assert draw_unreachable_since(session) is None
        assert _due(session, "webhook", now=since + timedelta(hours=2)) == []


def test_the_payload_names_ids_and_never_a_uid_whoever_wrote_the_reason():
    notice = Notice(NoticeEvent.JOB_FAILED, f"no file /var/datastore/{UID}/x.dcm",
                    job_id=3, stage="deidentify")

    payload = notice.payload(link="http://ui/dags/x", dag_id="draw_export", run_id="r1")

    assert UID not in str(payload)
    assert payload == {"event": "job_failed", "job_id": 3, "stage": "deidentify",
                       "reason": "no file /var/datastore/<uid>/x.dcm", "since": None,
                       "link": "http://ui/dags/x", "dag_id": "draw_export", "run_id": "r1"}
    assert notice.subject == "dicom-ops: job 3 failed at deidentify"
