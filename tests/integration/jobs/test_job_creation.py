"""Creating jobs on SQLite and PostgreSQL: the duplicate rule, force, multi-series order,
studies, and resend."""

from __future__ import annotations

import pytest
from dicom_ops.db.models import Event, Job
from dicom_ops.db.session import session_scope
from dicom_ops.jobs import (
    DuplicateJob,
    ImageRange,
    JobError,
    SeriesChoice,
    create_job,
    resend_job,
)
from sqlalchemy import select

from tests.support.jobs import add_series, job_in_status


def _create(url, series, *, template="Thorax OARs", force=False, priority=0) -> int:
    with session_scope(url) as session:
        return create_job(session, template=template, series=series, force=force,
                          priority=priority).id


def test_an_equal_job_is_refused_as_a_duplicate_naming_the_existing_job(db_url):
    # given a queued job for one series
    with session_scope(db_url) as session:
        series_id = add_series(session)
    first = _create(db_url, [SeriesChoice(series_id)])
    # when the same job is requested again, then it is refused
    with pytest.raises(DuplicateJob) as caught:
        _create(db_url, [SeriesChoice(series_id)])
    assert "duplicate" in str(caught.value)
    assert f"job {first}" in str(caught.value)
    assert caught.value.existing_job_id == first
    with session_scope(db_url) as session:
        assert len(session.scalars(select(Job)).all()) == 1


def test_force_creates_a_duplicate_anyway(db_url):
    with session_scope(db_url) as session:
        series_id = add_series(session)
    first = _create(db_url, [SeriesChoice(series_id)])
    second = _create(db_url, [SeriesChoice(series_id)], force=True)
    assert second != first
    with session_scope(db_url) as session:
        assert session.get(Job, second).forced is True


@pytest.mark.parametrize("status", ["in_queue", "processing", "finished"])
def test_jobs_that_still_count_block_a_duplicate(sqlite_url, status):
    with session_scope(sqlite_url) as session:
        series_id = add_series(session)
        job_in_status(session, status, series_id=series_id)
    with pytest.raises(DuplicateJob, match=status):
        _create(sqlite_url, [SeriesChoice(series_id)])


@pytest.mark.parametrize("status", ["failed", "cancelled", "invalidated"])
def test_failed_cancelled_and_invalidated_jobs_do_not_count(sqlite_url, status):
    with session_scope(sqlite_url) as session:
        series_id = add_series(session)
        old = job_in_status(session, status, series_id=series_id)
    new = _create(sqlite_url, [SeriesChoice(series_id)])
    with session_scope(sqlite_url) as session:
        assert session.get(Job, new).forced is False
        assert new != old


def test_a_different_template_or_range_or_order_is_not_a_duplicate(db_url):
    with session_scope(db_url) as session:
        a = add_series(session)
        b = add_series(session)
    _create(db_url, [SeriesChoice(a), SeriesChoice(b)])
    _create(db_url, [SeriesChoice(a), SeriesChoice(b)], template="Head and neck OARs")
    _create(db_url, [SeriesChoice(a, ImageRange(1, 20, 1)), SeriesChoice(b)])
    _create(db_url, [SeriesChoice(b), SeriesChoice(a)])
    _create(db_url, [SeriesChoice(a)])
    with pytest.raises(DuplicateJob):
        _create(db_url, [SeriesChoice(a, ImageRange(1, 20, 1)), SeriesChoice(b)])


def test_multi_series_jobs_keep_the_given_order_and_ranges(db_url):
    with session_scope(db_url) as session:
        ids = [add_series(session) for _ in range(3)]
    job_id = _create(db_url, [SeriesChoice(ids[2], ImageRange(40, 1, -1)), SeriesChoice(ids[0]),
                              SeriesChoice(ids[1], ImageRange(1, 58, 3))])
    with session_scope(db_url) as session:
        links = session.get(Job, job_id).series_links
        assert [(link.series_id, link.range_start, link.range_end, link.range_delta)
                for link in links] == [(ids[2], 40, 1, -1), (ids[0], None, None, None),
                                       (ids[1], 1, 58, 3)]


def test_series_from_different_studies_need_force(db_url):
    with session_scope(db_url) as session:
        a = add_series(session, study_uid="1.2.826.0.1.3680043.8.498.100")
        b = add_series(session, study_uid="1.2.826.0.1.3680043.8.498.200")
    with pytest.raises(JobError, match="different studies; a job across studies needs force"):
        _create(db_url, [SeriesChoice(a), SeriesChoice(b)])
    assert _create(db_url, [SeriesChoice(a), SeriesChoice(b)], force=True) > 0


def test_a_series_listed_twice_or_unknown_is_refused(sqlite_url):
    with session_scope(sqlite_url) as session:
        a = add_series(session)
    with pytest.raises(JobError, match="listed more than once"):
        _create(sqlite_url, [SeriesChoice(a), SeriesChoice(a, ImageRange(1, 5, 1))])
    with pytest.raises(JobError, match="no series #999"):
        _create(sqlite_url, [SeriesChoice(999)])


def test_resend_is_a_new_forced_job_for_the_same_series_and_template(db_url):
    # given a finished two-series job with a range and a priority
    with session_scope(db_url) as session:
        a, b = add_series(session), add_series(session)
    original = _create(db_url, [SeriesChoice(a, ImageRange(2, 21, 1)), SeriesChoice(b)],
                       template="Head and neck OARs", priority=5)
    # when it is sent again (twice: the second is as legitimate as the first)
    with session_scope(db_url) as session:
        resent = resend_job(session, original).id
    with session_scope(db_url) as session:
        again = resend_job(session, original).id
    # then the new jobs copy it, forced, and point back at it
    with session_scope(db_url) as session:
        for job_id in (resent, again):
            job = session.get(Job, job_id)
            assert (job.template, job.priority, job.forced, job.resend_of, job.status) == (
                "Head and neck OARs", 5, True, original, "in_queue")
            assert [(link.series_id, link.range_start) for link in job.series_links] == [
                (a, 2), (b, None)]
        messages = session.scalars(select(Event.message).where(
            Event.job_id == original, Event.kind == "resent")).all()
        assert messages == [f"sent again as job {resent}", f"sent again as job {again}"]


def test_creation_is_in_the_audit_log_without_uids(sqlite_url):
    with session_scope(sqlite_url) as session:
        a = add_series(session, series_uid="1.2.826.0.1.3680043.8.498.777")
    job_id = _create(sqlite_url, [SeriesChoice(a, ImageRange(1, 9, 2))])
    with session_scope(sqlite_url) as session:
        event = session.scalars(select(Event).where(Event.job_id == job_id)).one()
        assert event.kind == "created"
        assert f"#{a} 1:9:2" in event.message
        assert "1.2.826.0.1.3680043.8.498.777" not in event.message
