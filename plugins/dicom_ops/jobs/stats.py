"""What the jobs page plots, as plain numbers: turnaround per delivered job with its p50
and p95, jobs per day by outcome, failures by stage. Over a window of days (30 on the
page), each from one indexed query (``job.finished_at``, ``job.created_at``)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicom_ops.db.models import Job
from dicom_ops.jobs.lifecycle import JobStatus, has_failed, was_delivered

# A job's outcome as the "jobs per day" plot shows it; queued and processing jobs are
# still "in progress".
OUTCOMES = ("delivered", "failed", "cancelled", "invalidated", "in progress")
_OUTCOME_OF = {JobStatus.FINISHED: "delivered", JobStatus.FAILED: "failed",
               JobStatus.CANCELLED: "cancelled", JobStatus.INVALIDATED: "invalidated",
               JobStatus.IN_QUEUE: "in progress", JobStatus.PROCESSING: "in progress"}


@dataclass(frozen=True)
class TurnaroundPoint:
    job_id: int
    finished_at: datetime
    seconds: float


@dataclass(frozen=True)
class Turnaround:
    points: list[TurnaroundPoint]
    p50: float | None
    p95: float | None


def turnaround(session: Session, since: datetime) -> Turnaround:
    """Delivered jobs (finished, or finished then invalidated) finished since ``since``."""
    rows = session.execute(
        select(Job.id, Job.finished_at, Job.turnaround_seconds)
        .where(Job.finished_at >= since, Job.turnaround_seconds.is_not(None),
               was_delivered.clause)
        .order_by(Job.finished_at))
    points = [TurnaroundPoint(job_id, finished, seconds) for job_id, finished, seconds in rows]
    values = sorted(p.seconds for p in points)
    return Turnaround(points, percentile(values, 50), percentile(values, 95))


def percentile(sorted_values: list[float], percent: float) -> float | None:
    """Nearest-rank percentile (a value that occurred), None for no values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def jobs_per_day(session: Session, since: datetime, until: datetime
                 ) -> list[tuple[date, dict[str, int]]]:
    """Every UTC day from ``since`` to ``until``, with its created jobs counted by outcome."""
    day = func.date(Job.created_at)
    counted = session.execute(
        select(day, Job.status, func.count())
        .where(Job.created_at >= since, Job.created_at < until)
        .group_by(day, Job.status))
    by_day: dict[date, Counter] = {}
    for raw_day, status, count in counted:
        key = raw_day if isinstance(raw_day, date) else date.fromisoformat(str(raw_day)[:10])
        by_day.setdefault(key, Counter())[_OUTCOME_OF[JobStatus(status)]] += count
    first, last = since.astimezone(UTC).date(), (until - timedelta(microseconds=1)).astimezone(UTC).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [(d, {o: by_day.get(d, Counter())[o] for o in OUTCOMES}) for d in days]


def failures_by_stage(session: Session, since: datetime) -> list[tuple[str, int]]:
    """Failed jobs created since ``since`` per stage they failed at, most first."""
    rows = session.execute(
        select(Job.stage, func.count())
        .where(has_failed.clause, Job.created_at >= since)
        .group_by(Job.stage))
    return sorted(((stage or "unknown", count) for stage, count in rows),
                  key=lambda item: (-item[1], item[0]))
