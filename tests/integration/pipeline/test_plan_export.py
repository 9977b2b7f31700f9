"""The export run's first two tasks as domain calls: plan_export (recovery, then planning)
and claim_jobs, on real series folders, the shipped templates and the app DB."""

from __future__ import annotations

import logging
from datetime import timedelta

from dicom_ops.db.models import Event, Job, Series, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.jobs import SeriesChoice, claim_ready_series, create_job
from dicom_ops.pipeline.plan import claim_jobs, plan_export
from sqlalchemy import select, update

from tests.factories import synthetic_patient
from tests.support.jobs import add_series, job_in_status
from tests.support.pipeline import ready_series_on_disk


def _claimed_by_a_lost_run(settings, patient_index: int) -> int:
    """A ready series that a planner claimed an hour ago and never planned."""
    ready = ready_series_on_disk(settings, patient_index=patient_index)
    assert claim_ready_series(settings.db_url, 10) == [ready.series_id]
    with session_scope(settings.db_url) as session:
        session.execute(update(Event).where(Event.series_id == ready.series_id,
                                            Event.kind == "claimed")
                        .values(at=utcnow() - timedelta(hours=1)))
    return ready.series_id


def _stuck_before_upload(settings) -> int:
    """A job left processing by a lost run, nothing sent, untouched for longer than the
    import deadline (6 h by default) plus an hour."""
    with session_scope(settings.db_url) as session:
        job_id = job_in_status(session, "processing")
        session.add(Transfer(job_id=job_id, status="pending"))
    with session_scope(settings.db_url) as session:
        session.execute(update(Job).where(Job.id == job_id)
                        .values(updated_at=utcnow() - timedelta(hours=8)))
    return job_id


def test_a_series_released_from_a_lost_claim_is_planned_in_the_same_pass(settings, caplog):
    # given a series a lost run claimed, a fresh ready one, and an abandoned job
    released = _claimed_by_a_lost_run(settings, patient_index=3)
    fresh = ready_series_on_disk(settings, patient_index=4).series_id
    abandoned = _stuck_before_upload(settings)

    # when the export run plans
    with caplog.at_level(logging.INFO, logger="dicom_ops.pipeline.plan"):
        report = plan_export(settings, max_series=10, actor="draw_export")

    # then both series became jobs, the abandoned job failed, and the log said so
    assert report.released_series == [released]
    assert report.abandoned_jobs == [abandoned]
    assert len(report.created_jobs) == 2
    assert report.summary() == {"released_series": 1, "abandoned_jobs": 1, "created_jobs": 2}
    with session_scope(settings.db_url) as session:
        assert {s.state for s in session.scalars(
            select(Series).where(Series.id.in_([released, fresh])))} == {"done"}
        assert session.get(Job, abandoned).status == "failed"
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == ("recovered abandoned work: 1 series ready again, "
                                    f"1 job(s) failed: [{abandoned}]")


def test_the_recovery_warning_carries_ids_only_never_patient_data(settings, caplog):
    ready = ready_series_on_disk(settings, patient_index=5)
    claim_ready_series(settings.db_url, 10)
    with session_scope(settings.db_url) as session:
        session.execute(update(Event).where(Event.kind == "claimed")
                        .values(at=utcnow() - timedelta(hours=1)))

    with caplog.at_level(logging.INFO):
        plan_export(settings)

    patient = synthetic_patient(5)
    first = ready.datasets[0]
    for text in (patient.patient_id, str(first.StudyInstanceUID),
                 str(first.SeriesInstanceUID), str(ready.folder)):
        assert text not in caplog.text


def test_planning_with_nothing_to_recover_logs_no_warning(settings, caplog):
    ready_series_on_disk(settings, patient_index=6)

    with caplog.at_level(logging.INFO, logger="dicom_ops.pipeline.plan"):
        report = plan_export(settings, max_series=1)

    assert (report.released_series, report.abandoned_jobs) == ([], [])
    assert len(report.created_jobs) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_claim_jobs_takes_at_most_max_jobs_highest_priority_first(settings):
    with session_scope(settings.db_url) as session:
        series_id = add_series(session)
        low, high, middle = (create_job(session, template="T", priority=p, force=True,
                                        series=[SeriesChoice(series_id)]).id
                             for p in (0, 9, 5))

    first = claim_jobs(settings.db_url, worker="run-1", max_jobs=2)
    rest = claim_jobs(settings.db_url, worker="run-2", max_jobs=20)

    assert (first, rest) == ([high, middle], [low])
    assert claim_jobs(settings.db_url, worker="run-3", max_jobs=20) == []
    with session_scope(settings.db_url) as session:
        assert {session.get(Job, j).status for j in (low, high, middle)} == {"processing"}
