"""The job status machine, in one place (CIRCUS CS rules).

    in_queue -> processing -> finished | failed
    in_queue -> cancelled
    finished -> invalidated

Nothing else. Every move goes through ``move`` below, which refuses anything
else with a message naming the job's current status, and records an event in
the same transaction as the change. Everyone else asks the predicates below
(``is_running(job.status)``, or ``is_running.clause`` in a query) instead of
comparing status strings. The statuses are the strings stored in ``job.status``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Job, JobSeries, Series, utcnow
from dicom_ops.db.states import StatePredicate
from dicom_ops.jobs.errors import JobError, TransitionRefused


class JobStatus(StrEnum):
    IN_QUEUE = "in_queue"
    PROCESSING = "processing"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INVALIDATED = "invalidated"


# action -> (the one status it starts from, the status it leads to)
TRANSITIONS: dict[str, tuple[JobStatus, JobStatus]] = {
    "start": (JobStatus.IN_QUEUE, JobStatus.PROCESSING),
    "finish": (JobStatus.PROCESSING, JobStatus.FINISHED),
    "fail": (JobStatus.PROCESSING, JobStatus.FAILED),
    "cancel": (JobStatus.IN_QUEUE, JobStatus.CANCELLED),
    "invalidate": (JobStatus.FINISHED, JobStatus.INVALIDATED),
}
ACTIONS = tuple(TRANSITIONS)
# The audit event each action records.
EVENT_KINDS = {"start": "started", "finish": "finished", "fail": "failed",
               "cancel": "cancelled", "invalidate": "invalidated"}
# Jobs in these statuses no longer count: not for duplicates, not for the queue.
INACTIVE_STATUSES = (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INVALIDATED)

# --- the questions other modules ask ------------------------------------------------------

is_queued = StatePredicate(Job.status, {JobStatus.IN_QUEUE},
                           doc="Waiting for a worker: nobody has started it.")
is_processing = StatePredicate(Job.status, {JobStatus.PROCESSING},
                               doc="A worker started it: only processing jobs have stages.")
is_running = StatePredicate(
    Job.status, {JobStatus.IN_QUEUE, JobStatus.PROCESSING},
    doc="Not ended yet: it may still read its series and write its files and events.")
has_failed = StatePredicate(Job.status, {JobStatus.FAILED},
                            doc="Failed: a person must look at it (notifications ask this).")
has_ended = StatePredicate(
    Job.status, set(JobStatus) - is_running.states,
    doc="Finished, failed, cancelled or invalidated: no step runs for it again.")
was_delivered = StatePredicate(
    Job.status, {JobStatus.FINISHED, JobStatus.INVALIDATED},
    doc="Its RTSTRUCT was delivered (perhaps withdrawn since): it has a turnaround.")
counts = StatePredicate(
    Job.status, set(JobStatus) - set(INACTIVE_STATUSES),
    doc="Still counts: an equal new job is a duplicate of it.")


def next_status(job_id: int, status: str, action: str) -> JobStatus:
    """The status ``action`` leads to from ``status``, or ``TransitionRefused``."""
    if action not in TRANSITIONS:
        raise ValueError(f"unknown job action {action!r}")
    source, target = TRANSITIONS[action]
    if status != source:
        raise TransitionRefused(
            job_id, status, action,
            f"job {job_id} is {status}: cannot {action} it ({action} only works on {source} jobs)",
        )
    return target


def get_job(session: Session, job_id: int, *, lock: bool = False) -> Job:
    """The job, fresh from the DB (row-locked on PostgreSQL with ``lock``), or ``JobError``."""
    query = select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update()
    job = session.execute(query).scalar_one_or_none()
    if job is None:
        raise JobError(f"no job {job_id}")
    return job


def move(session: Session, job_id: int, action: str, *, actor: str, message: str = "") -> Job:
    """Apply ``action`` to the job or refuse it; records the event in the same transaction."""
    job = get_job(session, job_id, lock=True)
    previous = job.status
    job.status = next_status(job_id, previous, action).value
    job.updated_at = utcnow()
    record_event(session, EVENT_KINDS[action], message or f"{previous} -> {job.status}",
                 job_id=job.id, actor=actor)
    session.flush()
    return job


def start_job(session: Session, job_id: int, *, worker: str) -> Job:
    """in_queue -> processing, claimed by ``worker`` (claims call this)."""
    job = move(session, job_id, "start", actor=worker, message=f"claimed by {worker}")
    job.claimed_by = worker[:128]
    job.started_at = utcnow()
    job.stage = "claimed"
    return job


def set_stage(session: Session, job_id: int, stage: str, *, actor: str = "pipeline") -> Job:
    """Record where a processing job is, so that a failure keeps the stage it happened in."""
    job = get_job(session, job_id, lock=True)
    if not is_processing(job.status):
        raise TransitionRefused(job_id, job.status, "stage",
                                f"job {job_id} is {job.status}: only processing jobs have stages")
    job.stage = stage[:64]
    job.updated_at = utcnow()
    record_event(session, "stage", stage, job_id=job_id, actor=actor)
    return job


def finish_job(session: Session, job_id: int, *, turnaround_seconds: float | None = None,
               actor: str = "pipeline") -> Job:
    """processing -> finished. Turnaround defaults to: first series ready -> now."""
    job = move(session, job_id, "finish", actor=actor)
    job.finished_at = utcnow()
    job.stage = "delivered"
    if turnaround_seconds is None:
        ready = _earliest_ready_at(session, job_id)
        if ready is not None:
            turnaround_seconds = (job.finished_at - ready).total_seconds()
    job.turnaround_seconds = turnaround_seconds
    return job


def fail_job(session: Session, job_id: int, *, stage: str, error: str,
             actor: str = "pipeline") -> Job:
    """processing -> failed, keeping the error and the stage it happened in.

    ``error`` is shown in the UI and the CLI: name tags and rules, never patient values.
    """
    job = move(session, job_id, "fail", actor=actor, message=f"{stage}: {error}")
    job.stage = stage[:64]
    job.error = error
    job.finished_at = utcnow()
    return job


def cancel_job(session: Session, job_id: int, *, actor: str = "cli") -> Job:
    """in_queue -> cancelled (only jobs nobody has started)."""
    return move(session, job_id, "cancel", actor=actor)


def invalidate_job(session: Session, job_id: int, *, actor: str = "cli",
                   reason: str | None = None) -> Job:
    """finished -> invalidated: the result is not to be trusted or counted."""
    return move(session, job_id, "invalidate", actor=actor,
                message=f"invalidate: {reason}" if reason else "")


def _earliest_ready_at(session: Session, job_id: int) -> datetime | None:
    return session.scalar(
        select(Series.ready_at)
        .join(JobSeries, JobSeries.series_id == Series.id)
        .where(JobSeries.job_id == job_id, Series.ready_at.is_not(None))
        .order_by(Series.ready_at)
        .limit(1)
    )
