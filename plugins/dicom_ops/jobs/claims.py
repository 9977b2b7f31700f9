"""Atomic claims: of the next job (workers) and of ready series (the planner).

On PostgreSQL the candidate rows are selected ``FOR UPDATE SKIP LOCKED``: a
second worker skips a row the first one holds and takes the next. On SQLite
every transaction starts with ``BEGIN IMMEDIATE`` (see ``db.session``), so
claimers queue for the write lock and each one reads the rows as the previous
one left them. Either way a job or series is claimed exactly once.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from dicom_ops.db.models import Job, Series
from dicom_ops.db.session import session_scope
from dicom_ops.intake import series_lifecycle
from dicom_ops.intake.series_lifecycle import SeriesState, awaits_planning
from dicom_ops.jobs.lifecycle import is_queued, start_job


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
