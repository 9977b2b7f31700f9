"""Atomic claims: of the next job (workers) and of ready series (the planner).

On PostgreSQL the candidate rows are selected ``FOR UPDATE SKIP LOCKED``: a
second worker skips a row the first one holds and takes the next. On SQLite
every transaction starts with ``BEGIN IMMEDIATE`` (see ``db.session``), so
claimers queue for the write lock and each one reads the rows as the previous
one left them. Either way a job or series is claimed exactly once.
"""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Job, Series
from dicom_ops.db.session import session_scope
from dicom_ops.jobs.lifecycle import start_job


def claim_next_job(url_or_engine: str | Engine, worker: str) -> int | None:
    """Move the next job (highest priority, then oldest) to ``processing``; its id or None."""
    with session_scope(url_or_engine) as session:
        job_id = session.scalar(
            select(Job.id)
            .where(Job.status == "in_queue")
            .order_by(Job.priority.desc(), Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if job_id is None:
            return None
        start_job(session, job_id, worker=worker)
        return job_id


def claim_ready_series(url_or_engine: str | Engine, limit: int, *,
                       actor: str = "planner") -> list[int]:
    """Move up to ``limit`` ready series (oldest ready first) to ``claimed``; their ids."""
    if limit < 1:
        return []
    with session_scope(url_or_engine) as session:
        ids = list(session.scalars(
            select(Series.id)
            .where(Series.state == "ready")
            .order_by(Series.ready_at.asc().nulls_last(), Series.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ))
        if not ids:
            return []
        session.execute(
            update(Series).where(Series.id.in_(ids)).values(state="claimed", state_detail=None)
        )
        for series_id in ids:
            record_event(session, "claimed", "ready -> claimed", series_id=series_id,
                         actor=actor)
        return ids
