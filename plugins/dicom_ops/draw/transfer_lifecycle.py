"""The transfer state machine (a job's exchange with the DRAW server), in one place.

    (new) -> pending -> uploading -> sent -> processing -> completed -> delivered -> confirmed
    sent -> completed              the first poll already finds the result
    uploading -> pending           the upload provably did not reach the server
    sent | processing -> failed    the server failed or lost it, or the deadline passed
    uploading -> failed            recovery: an upload whose answer never came
    pending | uploading | processing | completed | delivered -> pending
                                   the job was packed again (its prepare step ran again;
                                   a ``sent`` transfer keeps its status)

The export moves a transfer up to ``sent``, the import from there on. Every
change of ``Transfer.status`` goes through ``move``: it takes the job's row lock
and then the transfer's (the order cleanup takes them in too), refuses a move
the table does not allow, naming the transfer, its job and both statuses, and
can record an audit event in the same transaction. Cleanup, recovery and the
pipelines ask the predicates below instead of comparing status strings. The
statuses are the strings stored in ``transfer.status``; the schema does not change.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Job, Transfer
from dicom_ops.db.states import StatePredicate, Transitions


class TransferStatus(StrEnum):
    PENDING = "pending"  # packed; no upload attempt, or the last one provably did not arrive
    UPLOADING = "uploading"  # an upload attempt is in flight; its outcome is not known yet
    SENT = "sent"  # the server returned a task id
    PROCESSING = "processing"  # the server reports work in progress
    COMPLETED = "completed"  # the server has the RTSTRUCT ready
    DELIVERED = "delivered"  # re-identified and written / C-STOREd
    CONFIRMED = "confirmed"  # the server was told we received it (it deletes its copy)
    FAILED = "failed"


_S = TransferStatus  # only to keep the table below readable
_PACKED_AGAIN = _S.PENDING  # the job's prepare step ran again (an Airflow task re-run)

TRANSITIONS: Transitions[TransferStatus] = Transitions({
    None: {_S.PENDING},
    _S.PENDING: {_S.UPLOADING, _PACKED_AGAIN},
    _S.UPLOADING: {_S.SENT, _S.PENDING, _S.FAILED},  # answered; provably not; recovery
    _S.SENT: {_S.PROCESSING, _S.COMPLETED, _S.FAILED},
    _S.PROCESSING: {_S.PROCESSING, _S.COMPLETED, _S.FAILED, _PACKED_AGAIN},
    _S.COMPLETED: {_S.DELIVERED, _PACKED_AGAIN},
    _S.DELIVERED: {_S.CONFIRMED, _PACKED_AGAIN},
    _S.CONFIRMED: set(),
    _S.FAILED: set(),
})

# --- the questions other modules ask (``pred(transfer.status)``, or ``pred.clause``) -------

awaits_upload = StatePredicate(
    Transfer.status, {_S.PENDING}, doc="Packed: the zip waits to be uploaded.")
is_unknown_outcome = StatePredicate(
    Transfer.status, {_S.UPLOADING},
    doc="An upload was attempted and never answered: the server may hold a copy.")
is_sent = StatePredicate(
    Transfer.status, {_S.SENT}, doc="Uploaded: the server gave a task id, not polled since.")
awaits_result = StatePredicate(
    Transfer.status, {_S.SENT, _S.PROCESSING},
    doc="The server is working on it: the import polls it.")
needs_fetch = StatePredicate(
    Transfer.status, {_S.COMPLETED}, doc="The server has the result; we have not fetched it.")
needs_confirm = StatePredicate(
    Transfer.status, {_S.DELIVERED}, doc="Delivered here; the server has not been told yet.")
is_ready_to_finish = StatePredicate(
    Transfer.status, {_S.COMPLETED, _S.DELIVERED},
    doc="A result to deliver or confirm: the import finishes it (also after a crash).")
holds_server_data = StatePredicate(
    Transfer.status, {_S.UPLOADING, _S.SENT, _S.PROCESSING, _S.COMPLETED, _S.DELIVERED},
    doc="The DRAW server may hold the job's data or result.")
unanswered_by_server = StatePredicate(
    Transfer.status, {_S.PENDING, _S.UPLOADING}, missing=True,
    doc="No upload was answered with a task id: no transfer yet, packed, or mid-upload.")


# --- locking and moving -----------------------------------------------------------------


def locked(session: Session, job_id: int) -> Transfer | None:
    """The job's transfer, fresh and locked (after its job row), or None if it has none.

    Job row first, then transfer row: the order cleanup locks them in, so the two
    never wait for each other. On SQLite the transaction holds the write lock anyway.
    """
    session.execute(select(Job.id).where(Job.id == job_id).with_for_update())
    return session.execute(
        select(Transfer).where(Transfer.job_id == job_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def move(session: Session, transfer: Transfer, to: TransferStatus, *,
         event: str | None = None, message: str = "", actor: str = "pipeline"
         ) -> TransferStatus | None:
    """Move ``transfer`` to ``to`` under the row locks, or raise ``MoveRefused``.

    A row not stored yet is added and starts in ``to``. With ``event`` an audit
    event is recorded for the job in the same transaction. Returns the status it
    came from (None for a new row).
    """
    target = TransferStatus(to)
    current: TransferStatus | None = None
    if inspect(transfer).persistent:
        locked(session, transfer.job_id)  # refreshes ``transfer`` (same identity)
        current = TransferStatus(transfer.status)
    TRANSITIONS.check(_subject(transfer), current, target)
    transfer.status = target.value
    if current is None:
        session.add(transfer)
        session.flush()
    if event:
        record_event(session, event, message, job_id=transfer.job_id, actor=actor)
    return current


def _subject(transfer: Transfer) -> str:
    number = f" {transfer.id}" if transfer.id is not None else ""
    return f"transfer{number} (job {transfer.job_id})"
