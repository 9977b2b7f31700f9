"""The department's view of jobs: one page of jobs at a time, with the columns people ask
about (series, images, received / exported / delivered, turnaround), for the "DICOM jobs"
page in the Airflow UI (and anything else that wants the same rows).

Paging is by keyset on the job id, newest first: a page is "the N jobs below id X" (or
above it, going back), so page 2,000 of 100,000 jobs costs what page 1 does. Every
filter has an index that starts with its column and ends with the id (migration 0003).

Rows hold series descriptions and UIDs for the authenticated page; never log them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from dicom_ops.db.models import JOB_STATUSES, Job, JobSeries, Series, SubjectMap, Transfer
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.store import load_subject
from dicom_ops.intake.series_lifecycle import was_not_sent
from dicom_ops.jobs.planning import read_series_headers
from dicom_ops.templates import Template, TemplateMatch, match_template, rule_tags

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class JobFilter:
    """What the jobs table is narrowed to; ``created_from``/``created_to`` are whole UTC days."""

    status: str | None = None
    template: str | None = None
    created_from: date | None = None
    created_to: date | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in JOB_STATUSES:
            raise ValueError(f"status {self.status!r}: expected one of {', '.join(JOB_STATUSES)}")
        if self.created_from and self.created_to and self.created_to < self.created_from:
            raise ValueError(f"date range {self.created_from} to {self.created_to} is empty")

    def apply(self, query: Select) -> Select:
        if self.status is not None:
            query = query.where(Job.status == self.status)
        if self.template is not None:
            query = query.where(Job.template == self.template)
        if self.created_from is not None:
            query = query.where(Job.created_at >= _midnight(self.created_from))
        if self.created_to is not None:
            query = query.where(Job.created_at < _midnight(self.created_to + timedelta(days=1)))
        return query


@dataclass(frozen=True)
class JobPage:
    rows: list[dict[str, Any]]
    total: int  # jobs matching the filter, all pages
    newer_than: int | None  # pass as ``after`` for the page before (newer jobs), if any
    older_than: int | None  # pass as ``before`` for the page after (older jobs), if any


def page_of_jobs(session: Session, job_filter: JobFilter = JobFilter(), *,
                 before: int | None = None, after: int | None = None,
                 limit: int = PAGE_SIZE) -> JobPage:
    """Jobs newest first: those with an id below ``before``, or the page just above ``after``."""
    if before is not None and after is not None:
        raise ValueError("page by 'before' or by 'after', not both")
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = job_filter.apply(select(Job))
    if after is not None:
        found = list(session.scalars(query.where(Job.id > after).order_by(Job.id.asc())
                                     .limit(limit + 1)))
        more_newer = len(found) > limit
        jobs = list(reversed(found[:limit]))
        more_older = True  # the job at ``after`` itself is older
    else:
        if before is not None:
            query = query.where(Job.id < before)
        found = list(session.scalars(query.order_by(Job.id.desc()).limit(limit + 1)))
        more_older = len(found) > limit
        jobs = found[:limit]
        more_newer = before is not None
    total = session.scalar(job_filter.apply(select(func.count()).select_from(Job))) or 0
    rows = _rows(session, jobs)
    return JobPage(
        rows=rows,
        total=total,
        newer_than=rows[0]["id"] if rows and more_newer else None,
        older_than=rows[-1]["id"] if rows and more_older else None,
    )


def templates_in_use(session: Session) -> list[str]:
    """Template names that have jobs (for the filter's choices)."""
    return list(session.scalars(select(Job.template).distinct().order_by(Job.template)))


def _rows(session: Session, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """One query each for the page's first series, series counts and transfers."""
    ids = [job.id for job in jobs]
    if not ids:
        return []
    first = {job_id: series for job_id, series in session.execute(
        select(JobSeries.job_id, Series)
        .join(Series, Series.id == JobSeries.series_id)
        .where(JobSeries.job_id.in_(ids), JobSeries.position == 0))}
    counts = dict(session.execute(
        select(JobSeries.job_id, func.count()).where(JobSeries.job_id.in_(ids))
        .group_by(JobSeries.job_id)).all())
    transfers = {t.job_id: t for t in session.scalars(
        select(Transfer).where(Transfer.job_id.in_(ids)))}
    return [job_row(job, first.get(job.id), counts.get(job.id, 0), transfers.get(job.id))
            for job in jobs]


def job_row(job: Job, series: Series | None, series_count: int,
            transfer: Transfer | None) -> dict[str, Any]:
    """The jobs table's columns for one job (times as aware UTC datetimes)."""
    return {
        "id": job.id,
        "status": job.status,
        "stage": job.stage,
        "template": job.template,
        "priority": job.priority,
        "error": job.error,
        "resend_of": job.resend_of,
        "series_count": series_count,
        "series_id": series.id if series else None,
        "series_description": series.description if series else None,
        "modality": series.modality if series else None,
        "images": series.instance_count if series else None,
        "created_at": job.created_at,
        "received_at": (series.ready_at or series.first_seen) if series else None,
        "exported_at": transfer.uploaded_at if transfer else None,
        "delivered_at": transfer.delivered_at if transfer else None,
        "delivered_path": transfer.delivered_path if transfer else None,
        "finished_at": job.finished_at,
        "turnaround_seconds": job.turnaround_seconds,
    }


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# --- the patient, on demand -------------------------------------------------------------


def job_pseudonym(session: Session, job_id: int) -> str | None:
    """The pseudonym the job's series left under (what a viewer sees), or None before
    de-identification."""
    return session.scalar(select(SubjectMap.pseudonym).where(SubjectMap.job_id == job_id))


def job_patient(session: Session, job_id: int, keys: DeidKeys) -> dict[str, str] | None:
    """The original patient name and ID, decrypted from the subject map now (never stored
    or logged elsewhere); None when the job has no subject map yet."""
    found = load_subject(session, job_id, keys)
    if found is None:
        return None
    _pseudonym, _offset, subject = found
    return {"name": str(subject.get("PatientName", "")), "id": str(subject.get("PatientID", ""))}


# --- series that were not sent ----------------------------------------------------------


def unsent_series(session: Session, *, before: int | None = None,
                  limit: int = PAGE_SIZE) -> list[Series]:
    """"No template", conflicts and unreadable series, newest first (keyset on id)."""
    query = select(Series).where(was_not_sent.clause)
    if before is not None:
        query = query.where(Series.id < before)
    return list(session.scalars(query.order_by(Series.id.desc()).limit(max(1, limit))))


def explain_series(series: Series, templates: Sequence[Template]) -> TemplateMatch | None:
    """What ``dicom-ops templates test`` says for the series' first image: the winner or
    conflict, and each template's failed rules with the values found. None when its
    folder has no readable image any more."""
    found = read_series_headers(Path(series.folder), sorted(rule_tags(templates)))
    if found.headers is None:
        return None
    return match_template(found.headers, templates)
