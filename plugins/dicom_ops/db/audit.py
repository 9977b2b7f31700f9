"""The audit log: one append-only ``Event`` row per thing that happened. Never PHI."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicom_ops.db.models import Event

# The kind of event that records a notification sent about a job. Telling a person is not
# work on the job, so the claim of stranded work ignores these when it looks for activity.
NOTIFIED_EVENT = "notified"


def record_event(
    session: Session,
    kind: str,
    message: str = "",
    *,
    job_id: int | None = None,
    series_id: int | None = None,
    actor: str = "dicom-ops",
) -> Event:
    """Add an event in the caller's transaction (it commits with the change it describes)."""
    event = Event(job_id=job_id, series_id=series_id, actor=actor[:64], kind=kind,
                  message=message)
    session.add(event)
    return event


def events_after(session: Session, after_id: int, limit: int = 500) -> list[Event]:
    """Events recorded after the event ``after_id``, oldest first (the id is the order)."""
    return list(session.scalars(select(Event).where(Event.id > after_id).order_by(Event.id)
                                .limit(limit)))


def last_event_id(session: Session) -> int:
    return session.scalar(select(func.max(Event.id))) or 0
