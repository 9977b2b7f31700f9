"""Test helpers for jobs: series rows and jobs brought to a status the way production does."""

from __future__ import annotations

import itertools
from datetime import datetime

from dicom_ops.db.models import Series, utcnow
from dicom_ops.jobs import (
    SeriesChoice,
    cancel_job,
    create_job,
    fail_job,
    finish_job,
    invalidate_job,
    start_job,
)
from sqlalchemy.orm import Session

_numbers = itertools.count(1)


def add_series(session: Session, *, study_uid: str = "1.2.826.0.1.3680043.8.498.1",
               series_uid: str | None = None, folder: str = "/nonexistent",
               state: str = "ready", ready_at: datetime | None = None) -> int:
    """A series row (no files unless ``folder`` has them); its id."""
    series = Series(study_uid=study_uid,
                    series_uid=series_uid or f"1.2.826.0.1.3680043.8.498.9.{next(_numbers)}",
                    folder=folder, source="scp", state=state,
                    ready_at=ready_at or (utcnow() if state != "receiving" else None))
    session.add(series)
    session.flush()
    return series.id


def job_in_status(session: Session, status: str, *, template: str = "Thorax OARs",
                  series_id: int | None = None, priority: int = 0) -> int:
    """A job that reached ``status`` through the real lifecycle functions; its id."""
    series_id = series_id or add_series(session)
    job = create_job(session, template=template, series=[SeriesChoice(series_id)],
                     priority=priority, force=True, actor="test")
    if status in ("processing", "finished", "failed", "invalidated"):
        start_job(session, job.id, worker="test-worker")
    if status in ("finished", "invalidated"):
        finish_job(session, job.id, actor="test")
    if status == "invalidated":
        invalidate_job(session, job.id, actor="test")
    if status == "failed":
        fail_job(session, job.id, stage="upload", error="server said 500", actor="test")
    if status == "cancelled":
        cancel_job(session, job.id, actor="test")
    session.flush()
    return job.id
