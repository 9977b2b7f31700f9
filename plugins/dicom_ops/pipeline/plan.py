"""The start of an export run as two plain calls: plan the ready series, claim the jobs.

``plan_export`` first puts right what a lost run left behind (series claimed but never
planned, jobs stuck ``processing`` with nothing at the server), then turns ready series
into jobs. ``claim_jobs`` takes the jobs for one run: first those a lost run left
between its steps (they resume from their recorded stage), then queued ones. Each is the whole of one Airflow
task (``PlanJobsOperator``, ``ClaimJobsOperator``), so the operators hold no logic and
these are tested without a scheduler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from dicom_ops.config import Settings
from dicom_ops.jobs.claims import claim_next_job, claim_stranded_job
from dicom_ops.jobs.planning import plan_ready_series
from dicom_ops.jobs.recovery import fail_abandoned_jobs, release_stale_series_claims
from dicom_ops.templates import load_templates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanReport:
    """What one planning pass did; ids only, fit for logs and XCom."""

    released_series: list[int]  # claimed by a lost run, ready again (and planned below)
    abandoned_jobs: list[int]  # failed: no progress and nothing at the server
    created_jobs: list[int]

    def summary(self) -> dict[str, int]:
        return {"released_series": len(self.released_series),
                "abandoned_jobs": len(self.abandoned_jobs),
                "created_jobs": len(self.created_jobs)}


def plan_export(settings: Settings, *, max_series: int = 200,
                actor: str = "planner") -> PlanReport:
    """Recover abandoned work, then plan up to ``max_series`` ready series into jobs.

    Recovery runs first so that a series released from a lost run's claim is planned
    in this same pass instead of waiting for the next one.
    """
    released = release_stale_series_claims(settings.db_url, actor=actor)
    # An upload waiting for a busy server sits "processing" with nothing sent for up to
    # import_deadline_hours (its deferral's timeout); the extra hour leaves it alone.
    abandoned = fail_abandoned_jobs(
        settings.db_url, actor=actor,
        older_than=timedelta(hours=settings.import_deadline_hours + 1))
    if released or abandoned:
        log.warning("recovered abandoned work: %d series ready again, %d job(s) failed: %s",
                    len(released), len(abandoned), abandoned)
    templates = load_templates(settings.templates_dir)
    created = plan_ready_series(settings.db_url, templates, limit=max_series, actor=actor)
    return PlanReport(released_series=released, abandoned_jobs=abandoned,
                      created_jobs=created)


def claim_jobs(db_url: str | Engine, worker: str, max_jobs: int, *,
               stranded_after: timedelta | None = None) -> list[int]:
    """Take up to ``max_jobs`` jobs for ``worker``; their ids, in claim order.

    With ``stranded_after`` (one export interval), jobs a lost run left ``processing``
    before they reached the server come first: they have waited longest, and the next
    run picking them up is what keeps them from waiting for the recovery's deadline.
    Then queued jobs move to ``processing``, highest priority first, then oldest. Each
    claim is its own transaction, so jobs claimed before an error stay claimed (and
    are this run's).
    """
    claimed: list[int] = []
    while stranded_after is not None and len(claimed) < max_jobs:
        job_id = claim_stranded_job(db_url, worker, idle_for=stranded_after)
        if job_id is None:
            break
        claimed.append(job_id)
    if claimed:
        log.warning("resuming %d job(s) left between steps by a lost run: %s",
                    len(claimed), claimed)
    while len(claimed) < max_jobs:
        job_id = claim_next_job(db_url, worker)
        if job_id is None:
            break
        claimed.append(job_id)
    return claimed
