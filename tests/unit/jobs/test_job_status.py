"""Job statuses as an enum and the predicates cleanup, claims and the pipelines ask."""

from __future__ import annotations

import pytest
from dicom_ops.db.models import JOB_STATUSES, Job
from dicom_ops.db.session import session_scope
from dicom_ops.jobs.lifecycle import (
    JobStatus,
    counts,
    has_ended,
    has_failed,
    is_processing,
    is_queued,
    is_running,
)
from sqlalchemy import select

from tests.support.jobs import job_in_status

IN_QUEUE, PROCESSING, FINISHED, FAILED, CANCELLED, INVALIDATED = JobStatus
PREDICATES = {
    "is_queued": (is_queued, {IN_QUEUE}),
    "is_processing": (is_processing, {PROCESSING}),
    "is_running": (is_running, {IN_QUEUE, PROCESSING}),
    "has_failed": (has_failed, {FAILED}),
    "has_ended": (has_ended, {FINISHED, FAILED, CANCELLED, INVALIDATED}),
    "counts": (counts, {IN_QUEUE, PROCESSING, FINISHED}),
}


def test_the_statuses_are_exactly_the_strings_the_db_stores():
    assert tuple(JobStatus) == JOB_STATUSES


@pytest.mark.parametrize("name", list(PREDICATES))
def test_each_predicate_answers_the_same_for_a_row_value_and_in_sql(db_url, name):
    predicate, expected = PREDICATES[name]
    # given one job in every status, reached the way production reaches it
    with session_scope(db_url) as session:
        ids = {status: job_in_status(session, status.value) for status in JobStatus}
    # then the predicate holds for exactly the expected statuses ...
    assert {status for status in JobStatus if predicate(status.value)} == expected
    # ... and its SQL form selects exactly those jobs
    with session_scope(db_url) as session:
        found = set(session.scalars(select(Job.id).where(predicate.clause)))
    assert found == {ids[status] for status in expected}
