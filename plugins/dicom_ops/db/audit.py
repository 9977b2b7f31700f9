"""The audit log: one append-only ``Event`` row per thing that happened. Never PHI."""

from __future__ import annotations

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
