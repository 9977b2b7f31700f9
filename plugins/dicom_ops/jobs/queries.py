"""Reading jobs for people: plain dicts for ``dicom-ops jobs list|show`` (text and JSON).

These include series UIDs: they are shown to the operator, who is authorised;
never log them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dicom_ops.db.models import Event, Job, JobSeries, Series, Transfer
from dicom_ops.jobs.errors import JobError
from dicom_ops.jobs.lifecycle import get_job

TRANSFER_FIELDS = ("status", "server_task_id", "server_status", "zip_sha256", "rtstruct_sha256",
                   "upload_attempts", "poll_attempts", "last_polled_at", "deadline_at",
                   "uploaded_at", "completed_at", "delivered_at", "confirmed_at",
                   "delivered_path")


def find_series(session: Session, series_uid: str) -> Series:
    series = session.scalar(select(Series).where(Series.series_uid == series_uid))
    if series is None:
        raise JobError(f"no series with UID {series_uid} in the app DB")
    return series


def list_jobs(session: Session, status: str | None = None) -> list[dict[str, Any]]:
    """Jobs, newest first, each with its series."""
    query = (select(Job)
             .options(selectinload(Job.series_links).selectinload(JobSeries.series))
             .order_by(Job.id.desc()))
    if status is not None:
        query = query.where(Job.status == status)
    return [job_summary(job) for job in session.scalars(query)]


def job_details(session: Session, job_id: int) -> dict[str, Any]:
    """One job with its series, its transfer row (or None) and its events, oldest first."""
    job = get_job(session, job_id)
    details = job_summary(job)
    transfer = session.scalar(select(Transfer).where(Transfer.job_id == job_id))
    details["transfer"] = (
        None if transfer is None
        else {name: _plain(getattr(transfer, name)) for name in TRANSFER_FIELDS}
    )
    events = session.scalars(select(Event).where(Event.job_id == job_id).order_by(Event.id))
    details["events"] = [
        {"at": _plain(e.at), "actor": e.actor, "kind": e.kind, "message": e.message}
        for e in events
    ]
    return details


def job_summary(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.status,
        "template": job.template,
        "priority": job.priority,
        "stage": job.stage,
        "error": job.error,
        "forced": job.forced,
        "resend_of": job.resend_of,
        "claimed_by": job.claimed_by,
        "created_at": _plain(job.created_at),
        "updated_at": _plain(job.updated_at),
        "started_at": _plain(job.started_at),
        "finished_at": _plain(job.finished_at),
        "turnaround_seconds": job.turnaround_seconds,
        "series": [
            {
                "position": link.position,
                "series_id": link.series_id,
                "series_uid": link.series.series_uid,
                "study_uid": link.series.study_uid,
                "description": link.series.description,
                "range": "auto" if link.range_start is None
                else f"{link.range_start}:{link.range_end}:{link.range_delta}",
            }
            for link in job.series_links
        ],
    }


def _plain(value: Any) -> Any:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value
