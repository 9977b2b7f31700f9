"""Upload attempts, as the transfer lifecycle records them: every attempt counts, and a
transfer stays ``uploading`` (the server may hold a copy) while any outcome is unknown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dicom_ops.db.models import UPLOAD_OUTCOMES, Transfer, UploadAttempt, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.db.states import MoveRefused
from dicom_ops.draw import transfer_lifecycle
from dicom_ops.draw.transfer_lifecycle import (
    AttemptOutcome,
    ServerCopy,
    holds_server_data,
    is_unknown_outcome,
)
from sqlalchemy import select

from tests.support.jobs import job_in_status

DEADLINE = utcnow() + timedelta(hours=6)


@pytest.fixture
def packed(db_url) -> int:
    with session_scope(db_url) as session:
        job_id = job_in_status(session, "processing")
        transfer_lifecycle.move(session, Transfer(job_id=job_id, zip_sha256="0" * 64),
                                transfer_lifecycle.TransferStatus.PENDING)
    return job_id


def _start(db_url, job_id) -> int:
    with session_scope(db_url) as session:
        return transfer_lifecycle.start_attempt(
            session, transfer_lifecycle.locked(session, job_id)).number


def _status(db_url, job_id) -> str:
    with session_scope(db_url) as session:
        return transfer_lifecycle.locked(session, job_id).status


def test_the_outcomes_are_exactly_the_strings_the_db_stores():
    assert tuple(AttemptOutcome) == UPLOAD_OUTCOMES


def test_attempts_are_numbered_and_an_unknown_one_keeps_the_transfer_uploading(db_url, packed):
    first = _start(db_url, packed)
    with session_scope(db_url) as session:
        assert transfer_lifecycle.record_no_answer(session, packed, first, "timed out") == 1
    second = _start(db_url, packed)  # uploading -> uploading: another attempt

    assert (first, second) == (1, 2)
    assert is_unknown_outcome(_status(db_url, packed))
    assert holds_server_data(_status(db_url, packed))
    with session_scope(db_url) as session:
        assert transfer_lifecycle.unknown_attempts(session, packed) == 2
        assert transfer_lifecycle.locked(session, packed).upload_attempts == 2


def test_a_refusal_after_an_unknown_attempt_does_not_pretend_nothing_reached_the_server(
        db_url, packed):
    _start(db_url, packed)  # its answer is lost
    second = _start(db_url, packed)
    with session_scope(db_url) as session:
        transfer_lifecycle.record_refused(session, packed, second, "answered 500")
    assert _status(db_url, packed) == "uploading"  # attempt 1 may be on the server


def test_a_refusal_with_no_unknown_attempt_makes_the_transfer_pending_again(db_url, packed):
    attempt = _start(db_url, packed)
    with session_scope(db_url) as session:
        transfer_lifecycle.record_refused(session, packed, attempt, "answered 500")
    assert _status(db_url, packed) == "pending"


def test_an_answer_is_recorded_with_the_attempt_and_sends_the_transfer(db_url, packed):
    _start(db_url, packed)
    second = _start(db_url, packed)
    with session_scope(db_url) as session:
        transfer_lifecycle.record_answer(session, packed, second, "task-b", deadline=DEADLINE)
    with session_scope(db_url) as session:
        transfer = transfer_lifecycle.locked(session, packed)
        assert (transfer.status, transfer.server_task_id) == ("sent", "task-b")
        assert [(a.number, a.outcome, a.server_task_id) for a in session.scalars(
            select(UploadAttempt).order_by(UploadAttempt.number))] == [
            (1, "unknown", None), (2, "accepted", "task-b")]


def test_an_outcome_once_known_cannot_change(db_url, packed):
    attempt = _start(db_url, packed)
    with session_scope(db_url) as session:
        transfer_lifecycle.record_answer(session, packed, attempt, "task-a", deadline=DEADLINE)
    with pytest.raises(MoveRefused, match="accepted is final"), \
            session_scope(db_url) as session:
        transfer_lifecycle.record_refused(session, packed, attempt, "answered 500")


def test_only_known_tasks_that_are_not_the_result_are_further_results(db_url, packed):
    # given attempt 1 answered (task a), attempt 2 lost, attempt 3 answered (task b)
    for number, task in ((1, "task-a"), (2, None), (3, "task-b")):
        _start(db_url, packed)
        with session_scope(db_url) as session:
            if task is None:
                transfer_lifecycle.record_no_answer(session, packed, number, "dropped")
                continue
            transfer_lifecycle.record_answer(session, packed, number, task, deadline=DEADLINE)
            if number == 1:  # packed again, as a cleared Airflow task does
                transfer_lifecycle.move(session, transfer_lifecycle.locked(session, packed),
                                        transfer_lifecycle.TransferStatus.PROCESSING)
                transfer_lifecycle.move(session, transfer_lifecycle.locked(session, packed),
                                        transfer_lifecycle.TransferStatus.PENDING)
    with session_scope(db_url) as session:
        further = transfer_lifecycle.further_results(session)
        assert [(r.attempt, r.task_id) for r in further] == [(1, "task-a")]
        # when task a finishes first, it becomes the result and task b the further one
        assert transfer_lifecycle.adopt_result(session, further[0])
    with session_scope(db_url) as session:
        assert [(r.attempt, r.task_id) for r in transfer_lifecycle.further_results(session)
                ] == [(3, "task-b")]
        transfer_lifecycle.settle_server_copy(session, packed, "task-b", ServerCopy.CONFIRMED,
                                              message="confirmed, not delivered")
    with session_scope(db_url) as session:
        assert transfer_lifecycle.further_results(session) == []
