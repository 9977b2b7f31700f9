"""Creating jobs: the duplicate rule, multi-series order, study check, and resend.

A job is equal to another when it has the same template and the same ordered
list of series with the same ranges. An equal job that still counts (any status
but failed, cancelled or invalidated) makes a new one a duplicate, refused
unless forced. Series from different studies in one job also need force.
Resend (the DRAW client's "send again") is a new forced job for the same
series, ranges and template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Job, JobSeries, Series
from dicom_ops.jobs.errors import DuplicateJob, JobError
from dicom_ops.jobs.lifecycle import JobStatus, counts, get_job
from dicom_ops.jobs.ranges import ImageRange, range_text


@dataclass(frozen=True)
class SeriesChoice:
    """One series of a job (by app DB id) and its image range (None = auto)."""

    series_id: int
    image_range: ImageRange | None = None

    @property
    def key(self) -> tuple[int, int | None, int | None, int | None]:
        r = self.image_range
        return (self.series_id, *(
            (r.start, r.end, r.delta) if r is not None else (None, None, None)))


def create_job(
    session: Session,
    *,
    template: str,
    series: Sequence[SeriesChoice],
    priority: int = 0,
    force: bool = False,
    actor: str = "cli",
    resend_of: int | None = None,
) -> Job:
    """A new ``in_queue`` job, or ``JobError`` / ``DuplicateJob`` saying why not."""
    if not template.strip():
        raise JobError("a job needs a template")
    if not series:
        raise JobError("a job needs at least one series")
    ids = [choice.series_id for choice in series]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise JobError(f"series #{repeated[0]} is listed more than once in the same job")
    rows = _lock_series(session, ids)
    studies = {rows[i].study_uid for i in ids}
    if len(studies) > 1 and not force:
        raise JobError(f"the series come from {len(studies)} different studies; "
                       "a job across studies needs force (--force)")
    if not force:
        existing = find_duplicate(session, template, series)
        if existing is not None:
            raise DuplicateJob(existing.id, existing.status)
    job = Job(template=template, priority=priority, status=JobStatus.IN_QUEUE.value,
              forced=force, resend_of=resend_of)
    job.series_links = [
        JobSeries(series_id=choice.series_id, position=position,
                  range_start=choice.key[1], range_end=choice.key[2], range_delta=choice.key[3])
        for position, choice in enumerate(series)
    ]
    session.add(job)
    session.flush()
    ranges = ", ".join(f"#{c.series_id} {range_text(c.image_range)}" for c in series)
    notes = "".join([", forced" if force else "",
                     f", resend of job {resend_of}" if resend_of else ""])
    record_event(session, "created",
                 f"template {template}, priority {priority}, series {ranges}{notes}",
                 job_id=job.id, actor=actor)
    return job


def find_duplicate(session: Session, template: str, series: Sequence[SeriesChoice]
                   ) -> Job | None:
    """The oldest job that still counts and equals the requested one, if any."""
    wanted = [choice.key for choice in series]
    same_first_series = select(JobSeries.job_id).where(
        JobSeries.position == 0, JobSeries.series_id == series[0].series_id)
    candidates = session.scalars(
        select(Job)
        .where(Job.template == template, counts.clause, Job.id.in_(same_first_series))
        .options(selectinload(Job.series_links))
        .order_by(Job.id)
    ).all()
    for job in candidates:
        have = [(link.series_id, link.range_start, link.range_end, link.range_delta)
                for link in job.series_links]
        if have == wanted:
            return job
    return None


def resend_job(session: Session, job_id: int, *, actor: str = "cli") -> Job:
    """A new forced job with the same template, series, ranges and priority as ``job_id``."""
    original = get_job(session, job_id)
    choices = [SeriesChoice(link.series_id, _link_range(link)) for link in original.series_links]
    job = create_job(session, template=original.template, series=choices,
                     priority=original.priority, force=True, actor=actor, resend_of=original.id)
    record_event(session, "resent", f"sent again as job {job.id}", job_id=original.id,
                 actor=actor)
    return job


def _link_range(link: JobSeries) -> ImageRange | None:
    if link.range_start is None:
        return None
    return ImageRange(link.range_start, link.range_end, link.range_delta)


def _lock_series(session: Session, ids: Sequence[int]) -> dict[int, Series]:
    """The series rows, locked so two creators of the same job cannot both pass the checks."""
    rows = session.scalars(
        select(Series).where(Series.id.in_(ids)).order_by(Series.id).with_for_update()
    ).all()
    found = {row.id: row for row in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise JobError(f"no series #{missing[0]} in the app DB")
    return found
