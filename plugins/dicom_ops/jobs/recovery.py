"""Work abandoned by a crash between steps, put right at the start of each export run.

Airflow retries a task whose worker died, but a lost DAG run would leave work behind:
a series claimed by a planner that stopped before planning it, or a job left
``processing`` with nothing at the server. Neither may wait forever in silence.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from dicom_ops.db.models import Event, Job, Series, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.draw import transfer_lifecycle
from dicom_ops.draw.transfer_lifecycle import (
    TransferStatus,
    is_unknown_outcome,
    unanswered_by_server,
)
from dicom_ops.intake import series_lifecycle
from dicom_ops.intake.series_lifecycle import SeriesState, is_claimed
from dicom_ops.jobs.lifecycle import fail_job, is_processing

STALE_CLAIM = timedelta(minutes=30)
# The event series_lifecycle.move records when a planner claims a series (kind = new state).
CLAIM_EVENT = SeriesState.CLAIMED.value


def release_stale_series_claims(url_or_engine: str | Engine, *,
                                older_than: timedelta = STALE_CLAIM,
                                now: datetime | None = None, actor: str = "recovery"
                                ) -> list[int]:
    """Series still ``claimed`` long after their claim go back to ``ready``; their ids."""
    cutoff = (now or utcnow()) - older_than
    # Correlated to the few claimed series (index on event.series_id): grouping every
    # claim event ever recorded would cost more with each series that went through.
    last_claim = (select(func.max(Event.at))
                  .where(Event.series_id == Series.id, Event.kind == CLAIM_EVENT)
                  .correlate(Series).scalar_subquery())
    with session_scope(url_or_engine) as session:
        stale = session.scalars(
            select(Series).where(is_claimed.clause, last_claim < cutoff)
            .with_for_update(of=Series, skip_locked=True)
        ).all()
        for series in stale:
            series_lifecycle.move(session, series, SeriesState.READY, actor=actor,
                                  detail=series.state_detail, event="released",
                                  message="claimed but never planned (run lost); ready again")
        return [series.id for series in stale]


def fail_abandoned_jobs(url_or_engine: str | Engine, *, older_than: timedelta,
                        now: datetime | None = None, actor: str = "recovery") -> list[int]:
    """``processing`` jobs with nothing at the server and no progress for ``older_than``
    fail with a reason that says what to do; their ids."""
    cutoff = (now or utcnow()) - older_than
    with session_scope(url_or_engine) as session:
        rows = session.execute(
            select(Job.id, Transfer.status).outerjoin(Transfer, Transfer.job_id == Job.id)
            .where(is_processing.clause, Job.updated_at < cutoff)
            .with_for_update(of=Job, skip_locked=True)
        ).all()
        failed = []
        for job_id, transfer_status in rows:
            if not unanswered_by_server(transfer_status):
                continue  # the import's poll and deadline look after it
            if is_unknown_outcome(transfer_status):
                transfer_lifecycle.move(session, transfer_lifecycle.locked(session, job_id),
                                        TransferStatus.FAILED)
                reason = ("abandoned during an upload whose outcome is unknown; check the "
                          "DRAW server, then resend the job")
            else:
                reason = "abandoned: no progress (its run was lost); resend the job"
            fail_job(session, job_id, stage="recovery", error=reason, actor=actor)
            failed.append(job_id)
        return failed
