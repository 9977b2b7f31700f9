"""The transfer state machine: every move it allows, every move it refuses, its predicates."""

from __future__ import annotations

import pytest
from dicom_ops.db.models import TRANSFER_STATUSES, Event, Job, Transfer
from dicom_ops.db.session import session_scope, upgrade
from dicom_ops.db.states import MoveRefused
from dicom_ops.draw import transfer_lifecycle
from dicom_ops.draw.transfer_lifecycle import (
    TRANSITIONS,
    TransferStatus,
    awaits_result,
    awaits_upload,
    holds_server_data,
    is_ready_to_finish,
    is_sent,
    is_unknown_outcome,
    may_upload,
    needs_confirm,
    needs_fetch,
    unanswered_by_server,
)
from sqlalchemy import select

from tests.support.jobs import job_in_status

PENDING, UPLOADING, SENT, PROCESSING, COMPLETED, DELIVERED, CONFIRMED, FAILED = TransferStatus
# (from, to) -> who makes the move; None is a row not stored yet.
ALLOWED = {
    (None, PENDING): "export: the job's first packing",
    (PENDING, UPLOADING): "export: an upload attempt starts",
    (UPLOADING, SENT): "export: the server answered with a task id",
    (UPLOADING, PENDING): "export: the upload provably did not reach the server",
    (UPLOADING, UPLOADING): "export: another attempt after one whose outcome is unknown",
    (UPLOADING, FAILED): "recovery: the upload's answer never came",
    (SENT, PROCESSING): "import: the server is working on it",
    (SENT, COMPLETED): "import: the first poll finds the result",
    (SENT, FAILED): "import: failed, lost or past its deadline on the server",
    (PROCESSING, PROCESSING): "import: still working",
    (PROCESSING, COMPLETED): "import: the result is ready",
    (PROCESSING, FAILED): "import: failed, lost or past its deadline on the server",
    (COMPLETED, DELIVERED): "import: re-identified and delivered",
    (DELIVERED, CONFIRMED): "import: the server was told",
    **{(status, PENDING): "export: the job was packed again"
       for status in (PENDING, PROCESSING, COMPLETED, DELIVERED)},
}
EVERY_PAIR = [(current, target) for current in (None, *TransferStatus)
              for target in TransferStatus]


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    """One app DB for the module: every case works on a job and transfer of its own."""
    url = f"sqlite:///{tmp_path_factory.mktemp('transfer-lifecycle') / 'app.sqlite'}"
    upgrade(url)
    return url


def _transfer_in(session, status: TransferStatus | None) -> Transfer:
    job_id = job_in_status(session, "processing")
    if status is None:
        return Transfer(job_id=job_id)
    transfer = Transfer(job_id=job_id, status=status.value)
    session.add(transfer)
    session.flush()
    return transfer


def _job_events(session, job_id: int) -> list[tuple[str, str]]:
    return [(e.kind, e.message) for e in session.scalars(
        select(Event).where(Event.job_id == job_id).order_by(Event.id))]


def test_the_statuses_are_exactly_the_strings_the_db_stores():
    assert tuple(TransferStatus) == TRANSFER_STATUSES


def test_the_machine_allows_exactly_the_documented_moves():
    assert TRANSITIONS.pairs() == set(ALLOWED)


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED, key=str))
def test_every_allowed_move_changes_the_status(url, current, target):
    # given a transfer in `current` (or none yet)
    with session_scope(url) as session:
        transfer = _transfer_in(session, current)
        job_id = transfer.job_id
        events_before = _job_events(session, job_id)
        # when it moves to `target`
        came_from = transfer_lifecycle.move(session, transfer, target)
    # then the row has the new status, and no event was asked for, so none was added
    assert came_from == current
    with session_scope(url) as session:
        assert session.scalars(select(Transfer.status).where(Transfer.job_id == job_id)
                               ).one() == target
        assert _job_events(session, job_id) == events_before


@pytest.mark.parametrize(("current", "target"),
                         [pair for pair in EVERY_PAIR if pair not in ALLOWED])
def test_every_other_move_is_refused_naming_the_transfer_and_both_statuses(
        url, current, target):
    # given a transfer in `current`
    with session_scope(url) as session:
        transfer = _transfer_in(session, current)
        job_id, transfer_id = transfer.job_id, transfer.id
    # when a move to `target` is asked for, then it is refused and nothing changes
    with pytest.raises(MoveRefused) as refused, session_scope(url) as session:
        transfer = (session.get(Transfer, transfer_id) if transfer_id
                    else Transfer(job_id=job_id))
        transfer_lifecycle.move(session, transfer, target)
    if current is None:
        assert f"a new transfer (job {job_id}) cannot start as {target}" in str(refused.value)
        return
    assert (f"transfer {transfer_id} (job {job_id}) is {current}: cannot move it to {target}"
            in str(refused.value))
    with session_scope(url) as session:
        assert session.get(Transfer, transfer_id).status == current


def test_a_terminal_status_says_it_is_final(url):
    with session_scope(url) as session:
        transfer = _transfer_in(session, CONFIRMED)
    with pytest.raises(MoveRefused, match=r"\(confirmed is final\)"), \
            session_scope(url) as session:
        transfer_lifecycle.move(session, session.get(Transfer, transfer.id), PENDING)


def test_a_move_can_record_an_event_for_the_job(url):
    with session_scope(url) as session:
        transfer = _transfer_in(session, SENT)
        transfer_lifecycle.move(session, transfer, COMPLETED, event="server completed",
                                message="SEGMENTATION COMPLETED", actor="draw_import")
        assert _job_events(session, transfer.job_id)[-1] == (
            "server completed", "SEGMENTATION COMPLETED")


def test_locking_a_job_without_a_transfer_finds_none(url):
    with session_scope(url) as session:
        job_id = job_in_status(session, "in_queue")
        assert transfer_lifecycle.locked(session, job_id) is None


PREDICATES = {
    "awaits_upload": (awaits_upload, {PENDING}, False),
    "is_unknown_outcome": (is_unknown_outcome, {UPLOADING}, False),
    "is_sent": (is_sent, {SENT}, False),
    "awaits_result": (awaits_result, {SENT, PROCESSING}, False),
    "needs_fetch": (needs_fetch, {COMPLETED}, False),
    "needs_confirm": (needs_confirm, {DELIVERED}, False),
    "is_ready_to_finish": (is_ready_to_finish, {COMPLETED, DELIVERED}, False),
    "holds_server_data": (holds_server_data,
                          {UPLOADING, SENT, PROCESSING, COMPLETED, DELIVERED}, False),
    "unanswered_by_server": (unanswered_by_server, {PENDING, UPLOADING}, True),
    "may_upload": (may_upload, {PENDING, UPLOADING}, False),
}


@pytest.mark.parametrize("name", list(PREDICATES))
def test_each_predicate_answers_the_same_for_a_row_value_and_in_sql(db_url, name):
    predicate, expected, for_no_transfer = PREDICATES[name]
    # given one job per transfer status, and one job without a transfer
    with session_scope(db_url) as session:
        jobs = {status: _transfer_in(session, status).job_id for status in TransferStatus}
        jobs[None] = job_in_status(session, "processing")
    # then the predicate holds for exactly the expected statuses ("no transfer" included) ...
    assert {status for status in TransferStatus if predicate(status.value)} == expected
    assert predicate(None) is for_no_transfer
    # ... and its SQL form selects exactly those jobs (an outer join gives NULL for none)
    with session_scope(db_url) as session:
        found = set(session.scalars(
            select(Job.id).outerjoin(Transfer, Transfer.job_id == Job.id)
            .where(Job.id.in_(list(jobs.values())), predicate.clause)))
    assert found == {jobs[status] for status in expected | ({None} if for_no_transfer else set())}
