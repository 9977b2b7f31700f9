"""Event items in the app DB (SQLite and PostgreSQL): what counts as a ready series, a
quiet study and a delivered RTSTRUCT; each is taken once per service."""

from __future__ import annotations

from datetime import timedelta

from dicom_ops.db.models import Job, JobSeries, Series, ServiceItem, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.services.events import EventWatch, claim_items

HOUR = timedelta(hours=1)


def add_series(session, study: str, number: int, state: str = "ready", ago: timedelta = HOUR / 60):
    series = Series(study_uid=study, series_uid=f"{study}.{number}", modality="CT",
                    folder=f"/data/{study}/{number}", source="scp", state=state,
                    ready_at=None if state == "receiving" else utcnow() - ago)
    session.add(series)
    session.flush()
    return series


def test_a_ready_series_is_taken_once_per_service_and_again_when_sent_again(db_url):
    since = utcnow() - HOUR
    with session_scope(db_url) as session:
        series = add_series(session, "1.2.3", 1)
        add_series(session, "1.2.3", 2, state="receiving")
        add_series(session, "1.2.4", 1, ago=3 * HOUR)  # before the look-back window
    with session_scope(db_url) as session:
        first = claim_items(session, "report", "series_ready", since)
        again = claim_items(session, "report", "series_ready", since)
        other = claim_items(session, "forward", "series_ready", since)
    with session_scope(db_url) as session:
        session.get(Series, series.id).ready_at = utcnow()  # sent again, ready again
    with session_scope(db_url) as session:
        resent = claim_items(session, "report", "series_ready", since)

    assert len(first) == 1 and again == [] and len(other) == 1
    assert len(resent) == 1 and resent != first


def test_a_study_is_ready_once_none_of_its_series_is_still_receiving(db_url):
    since = utcnow() - HOUR
    with session_scope(db_url) as session:
        first = add_series(session, "1.2.5", 1)
        second = add_series(session, "1.2.5", 2, state="receiving")
    with session_scope(db_url) as session:
        while_receiving = claim_items(session, "study-qa", "study_ready", since)
    with session_scope(db_url) as session:
        row = session.get(Series, second.id)
        row.state, row.ready_at = "ready", utcnow()
    with session_scope(db_url) as session:
        quiet = claim_items(session, "study-qa", "study_ready", since)
        item = session.get(ServiceItem, quiet[0])
        assert (item.item_key, item.series_id) == ("1.2.5", first.id)

    assert while_receiving == [] and len(quiet) == 1


def test_a_delivered_rtstruct_is_an_item_of_its_job(db_url):
    since = utcnow() - HOUR
    with session_scope(db_url) as session:
        series = add_series(session, "1.2.6", 1, state="done")
        job = Job(template="Thorax OARs", status="finished")
        session.add(job)
        session.flush()
        session.add(JobSeries(job_id=job.id, series_id=series.id, position=0))
        session.add(Transfer(job_id=job.id, status="delivered"))
        session.add(Job(template="other", status="processing"))
    with session_scope(db_url) as session:
        before = claim_items(session, "forward", "rtstruct_delivered", since)
        transfer = session.query(Transfer).one()
        transfer.delivered_at, transfer.delivered_path = utcnow(), "/data/RS.1.dcm"
    with session_scope(db_url) as session:
        after = claim_items(session, "forward", "rtstruct_delivered", since)
        item = session.get(ServiceItem, after[0])
        assert (item.job_id, item.series_id) == (job.id, series.id)

    assert before == [] and len(after) == 1


def test_the_watch_reports_each_new_item_once_and_a_burst_together(db_url):
    watch = EventWatch("series_ready", window=HOUR)
    with session_scope(db_url) as session:
        add_series(session, "1.2.7", 1)
    with session_scope(db_url) as session:
        at_start = watch.poll(session)
        nothing_new = watch.poll(session)
        add_series(session, "1.2.7", 2, ago=timedelta(0))
        add_series(session, "1.2.7", 3, ago=timedelta(0))
    with session_scope(db_url) as session:
        burst = watch.poll(session)

    assert len(at_start) == 1 and nothing_new == [] and len(burst) == 2
