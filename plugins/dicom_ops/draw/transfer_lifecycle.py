"""The transfer state machine (a job's exchange with the DRAW server), in one place,
with the job's upload attempts.

    (new) -> pending -> uploading -> sent -> processing -> completed -> delivered -> confirmed
    sent -> completed              the first poll already finds the result
    uploading -> uploading         another attempt: the last one's outcome is unknown
    uploading -> pending           the attempt provably did not reach the server, and no
                                   earlier attempt's outcome is unknown
    sent | processing -> failed    the server failed or lost it, or the deadline passed
    uploading -> failed            recovery: an upload whose answer never came
    pending | uploading | processing | completed | delivered -> pending
                                   the job was packed again (its prepare step ran again;
                                   a ``sent`` transfer keeps its status, and so does an
                                   ``uploading`` one: the export packs it again itself)

The export moves a transfer up to ``sent``, the import from there on. Every
change of ``Transfer.status`` goes through ``move``: it takes the job's row lock
and then the transfer's (the order cleanup takes them in too), refuses a move
the table does not allow, naming the transfer, its job and both statuses, and
can record an audit event in the same transaction. Cleanup, recovery and the
pipelines ask the predicates below instead of comparing status strings. The
statuses are the strings stored in ``transfer.status``; the schema does not change.

**Upload attempts** (``upload_attempt`` rows, see the second half of this module).
Each attempt is recorded, outcome ``unknown``, before its zip is sent, and the
server's answer is recorded with it in the transaction that moves the transfer to
``sent``. A transfer stays ``uploading`` as long as some attempt's outcome is
unknown and none was answered: so ``holds_server_data`` keeps counting a job whose
earlier attempt may have reached the server, also after a later attempt was
refused. An accepted attempt whose task is not the job's result (a job uploaded
again, or an earlier task that finished first) is followed up by the import:
confirmed to the server when it finishes, never delivered (``further_results``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Job, Transfer, UploadAttempt, utcnow
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
    # answered; provably not; recovery; another attempt after an unknown outcome
    _S.UPLOADING: {_S.SENT, _S.PENDING, _S.FAILED, _S.UPLOADING},
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
may_upload = StatePredicate(
    Transfer.status, {_S.PENDING, _S.UPLOADING},
    doc="The export uploads (again): packed, or the last attempts' outcome is unknown "
        "(bounded by DICOM_OPS_MAX_UPLOAD_ATTEMPTS).")
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


# --- upload attempts ----------------------------------------------------------------------


class AttemptOutcome(StrEnum):
    """``upload_attempt.outcome``: what the export knows about one attempt."""

    UNKNOWN = "unknown"  # recorded before sending; stays so when the answer never came
    ACCEPTED = "accepted"  # the server answered with a task id
    REFUSED = "refused"  # provably not received: an HTTP error answer, or no connection


class ServerCopy(StrEnum):
    """``upload_attempt.server_copy``: what became of an accepted attempt's server task."""

    CONFIRMED = "confirmed"  # told "received": the server deletes its copy
    FAILED = "failed"  # the server failed the task; nothing to fetch or confirm
    GONE = "gone"  # the server no longer knows the task (404)
    ABANDONED = "abandoned"  # not finished by the import deadline; no longer polled


_A = AttemptOutcome
ATTEMPT_TRANSITIONS: Transitions[AttemptOutcome] = Transitions({
    None: {_A.UNKNOWN},
    _A.UNKNOWN: {_A.ACCEPTED, _A.REFUSED},
    _A.ACCEPTED: set(),
    _A.REFUSED: set(),
})


@dataclass(frozen=True)
class FurtherResult:
    """A task the server answered for that is not the job's result (yet)."""

    job_id: int
    attempt: int
    task_id: str
    started_at: datetime


def start_attempt(session: Session, transfer: Transfer, *, actor: str = "pipeline"
                  ) -> UploadAttempt:
    """Record a new attempt (outcome unknown) and move the transfer to ``uploading``.

    From ``pending`` this is the first attempt (or the first after refusals); from
    ``uploading`` the last attempt's outcome is unknown and this one is recorded as
    another attempt, which the caller has checked against the bound.
    """
    came_from = move(session, transfer, TransferStatus.UPLOADING)
    number = (session.scalar(select(func.max(UploadAttempt.number))
                             .where(UploadAttempt.job_id == transfer.job_id)) or 0) + 1
    attempt = UploadAttempt(job_id=transfer.job_id, number=number)
    _set_outcome(attempt, AttemptOutcome.UNKNOWN)
    transfer.upload_attempts += 1
    session.add(attempt)
    session.flush()
    if is_unknown_outcome(came_from):
        record_event(session, "upload again", f"attempt {number}: the outcome of an earlier "
                     "attempt is unknown", job_id=transfer.job_id, actor=actor)
    return attempt


def unknown_attempts(session: Session, job_id: int) -> int:
    """How many of the job's attempts may have reached the server unanswered."""
    return session.scalar(select(func.count()).select_from(UploadAttempt).where(
        UploadAttempt.job_id == job_id,
        UploadAttempt.outcome == AttemptOutcome.UNKNOWN.value)) or 0


def record_answer(session: Session, job_id: int, number: int, task_id: str, *,
                  deadline: datetime, actor: str = "pipeline") -> Transfer:
    """The server answered attempt ``number`` with ``task_id``: the attempt is accepted
    and the transfer ``sent``, in the one transaction the caller commits first of all."""
    transfer = locked(session, job_id)
    attempt = _attempt(session, job_id, number)
    _set_outcome(attempt, AttemptOutcome.ACCEPTED)
    attempt.server_task_id = task_id
    move(session, transfer, TransferStatus.SENT, event="uploaded",
         message=f"server task {task_id} (attempt {number})", actor=actor)
    transfer.server_task_id = task_id
    transfer.uploaded_at = attempt.ended_at
    transfer.deadline_at = deadline
    return transfer


def record_refused(session: Session, job_id: int, number: int, detail: str) -> None:
    """Attempt ``number`` provably did not reach the server. The transfer is ``pending``
    again unless an earlier attempt's outcome is unknown (then it stays ``uploading``)."""
    transfer = locked(session, job_id)
    _set_outcome(_attempt(session, job_id, number), AttemptOutcome.REFUSED, detail)
    session.flush()
    if is_unknown_outcome(transfer.status) and not unknown_attempts(session, job_id):
        move(session, transfer, TransferStatus.PENDING)


def record_no_answer(session: Session, job_id: int, number: int, detail: str) -> int:
    """Attempt ``number`` ended without an answer (it stays unknown); returns how many
    of the job's attempts are unknown now."""
    attempt = _attempt(session, job_id, number)
    attempt.detail, attempt.ended_at = detail[:500], utcnow()
    record_event(session, "upload outcome unknown", f"attempt {number}: {detail}",
                 job_id=job_id, actor="draw_export")
    return unknown_attempts(session, job_id)


def further_results(session: Session, *, job_id: int | None = None) -> list[FurtherResult]:
    """Accepted attempts whose server task is not the job's result and not settled yet,
    in attempt order: what the import polls, adopts or confirms (never delivers twice)."""
    query = (select(UploadAttempt.job_id, UploadAttempt.number, UploadAttempt.server_task_id,
                    UploadAttempt.started_at)
             .join(Transfer, Transfer.job_id == UploadAttempt.job_id)
             .where(UploadAttempt.outcome == AttemptOutcome.ACCEPTED.value,
                    UploadAttempt.server_copy.is_(None),
                    UploadAttempt.server_task_id.is_not(None),
                    Transfer.server_task_id.is_distinct_from(UploadAttempt.server_task_id))
             .order_by(UploadAttempt.job_id, UploadAttempt.number))
    if job_id is not None:
        query = query.where(UploadAttempt.job_id == job_id)
    return [FurtherResult(*row) for row in session.execute(query).all()]


def adopt_result(session: Session, result: FurtherResult, *, actor: str = "pipeline") -> bool:
    """An earlier task of the job finished first: it becomes the job's result, as long as
    the job still waits for one (True). The task it replaces becomes a further result."""
    transfer = locked(session, result.job_id)
    if transfer is None or not awaits_result(transfer.status):
        return False
    replaced = transfer.server_task_id
    transfer.server_task_id = result.task_id
    record_event(session, "result of another attempt",
                 f"server task {result.task_id} (attempt {result.attempt}) finished first; "
                 f"it is the job's result, server task {replaced} will not be delivered",
                 job_id=result.job_id, actor=actor)
    return True


def settle_server_copy(session: Session, job_id: int, task_id: str, fate: ServerCopy, *,
                       message: str = "", actor: str = "pipeline") -> None:
    """Record what became of a server task of the job (with an event when ``message``)."""
    attempt = session.scalars(select(UploadAttempt).where(
        UploadAttempt.job_id == job_id, UploadAttempt.server_task_id == task_id)
        .with_for_update()).first()
    if attempt is not None:
        attempt.server_copy, attempt.server_copy_at = ServerCopy(fate).value, utcnow()
    if message:
        record_event(session, f"further result {ServerCopy(fate).value}", message,
                     job_id=job_id, actor=actor)


def _attempt(session: Session, job_id: int, number: int) -> UploadAttempt:
    return session.scalars(select(UploadAttempt).where(
        UploadAttempt.job_id == job_id, UploadAttempt.number == number).with_for_update()
    ).one()


def _set_outcome(attempt: UploadAttempt, to: AttemptOutcome, detail: str | None = None
                 ) -> None:
    current = AttemptOutcome(attempt.outcome) if attempt.id is not None else None
    ATTEMPT_TRANSITIONS.check(f"upload attempt {attempt.number} (job {attempt.job_id})",
                              current, AttemptOutcome(to))
    attempt.outcome = AttemptOutcome(to).value
    if current is not None:
        attempt.ended_at = utcnow()
    if detail is not None:
        attempt.detail = detail[:500]
