"""Atomic claims: of the next job (workers), of a stranded job to resume, and of ready
series (the planner).

On PostgreSQL the candidate rows are selected ``FOR UPDATE SKIP LOCKED``: a
second worker skips a row the first one holds and takes the next. On SQLite
every transaction starts with ``BEGIN IMMEDIATE`` (see ``db.session``), so
claimers queue for the write lock and each one reads the rows as the previous
one left them. Either way a job or series is claimed exactly once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, func, or_, select

from dicom_ops.db.audit import NOTIFIED_EVENT, record_event
from dicom_ops.db.models import Event, Job, Series, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.draw.transfer_lifecycle import may_upload
from dicom_ops.intake import series_lifecycle
from dicom_ops.intake.series_lifecycle import SeriesState, awaits_planning
from dicom_ops.jobs.lifecycle import is_processing, is_queued, start_job


def claim_next_job(url_or_engine: str | Engine, worker: str) -> int | None:
    """Move the next job (highest priority, then oldest) to ``processing``; its id or None."""
    with session_scope(url_or_engine) as session:
        job_id = session.scalar(
            select(Job.id)
            .where(is_queued.clause)
            .order_by(Job.priority.desc(), Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if job_id is None:
            return None
        start_job(session, job_id, worker=worker)
        return job_id


def claim_stranded_job(url_or_engine: str | Engine, worker: str, *, idle_for: timedelta,
                       now: datetime | None = None) -> int | None:
    """Take over the next ``processing`` job whose run was lost before it reached the
    server's answer: claimed but not packed (no transfer yet), packed but not uploaded
    (transfer ``pending``), or uploaded with an unknown outcome (``uploading``), with no
    activity (job row or audit event) for ``idle_for``. Its id, or None.

    ``idle_for`` is one export interval: a run that is working on a job records a stage
    or an event at every step, so a job this quiet has nobody working on it. An upload
    whose outcome is unknown is resumed too: the upload step then makes another recorded
    attempt, within DICOM_OPS_MAX_UPLOAD_ATTEMPTS (see ``pipeline.export``). Telling a
    person about a job (a ``notified`` event) is not activity. The job keeps its status and stage
    (the pipeline continues from there); ``claimed_by`` names the new run, and the
    takeover is an audit event, which also makes a second run skip it for ``idle_for``.
    """
    cutoff = (now or utcnow()) - idle_for
    last_event = (select(func.max(Event.at))
                  .where(Event.job_id == Job.id, Event.kind != NOTIFIED_EVENT)
                  .correlate(Job).scalar_subquery())
    with session_scope(url_or_engine) as session:
        job = session.scalars(
            select(Job).outerjoin(Transfer, Transfer.job_id == Job.id)
            .where(is_processing.clause, Job.updated_at < cutoff,
                   or_(last_event.is_(None), last_event < cutoff),
                   or_(Transfer.id.is_(None), may_upload.clause))
            .order_by(Job.priority.desc(), Job.id)
            .limit(1)
            .with_for_update(of=Job, skip_locked=True)
        ).first()
        if job is None:
            return None
        previous = job.claimed_by or "a lost run"
        job.claimed_by = worker[:128]
        job.updated_at = utcnow()
        record_event(session, "resumed", f"resumed by run {worker} at stage {job.stage} "
                     f"(left by {previous})", job_id=job.id, actor=worker)
        return job.id


def claim_ready_series(url_or_engine: str | Engine, limit: int, *,
                       actor: str = "planner") -> list[int]:
    """Move up to ``limit`` ready series (oldest ready first) to ``claimed``; their ids."""
    if limit < 1:
        return []
    with session_scope(url_or_engine) as session:
        ready = session.scalars(
            select(Series)
            .where(awaits_planning.clause)
            .order_by(Series.ready_at.asc().nulls_last(), Series.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for series in ready:  # records "claimed": "ready -> claimed"
            series_lifecycle.move(session, series, SeriesState.CLAIMED, actor=actor)
        return [series.id for series in ready]
