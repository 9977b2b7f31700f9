"""Work a lost export run left behind, made with the pipeline's own functions."""

from __future__ import annotations

from datetime import timedelta

from dicom_ops.config import Settings
from dicom_ops.db.models import Event, Job
from dicom_ops.db.session import session_scope
from dicom_ops.pipeline.plan import claim_jobs, plan_export
from sqlalchemy import select

LOST_RUN = "manual__lost"


def claim_in_a_lost_run(settings: Settings) -> list[int]:
    """Plan every ready series and claim its job, as a run that then stopped would."""
    plan_export(settings, actor="draw_export")
    return claim_jobs(settings.db_url, worker=LOST_RUN, max_jobs=20)


def age_job(settings: Settings, job_id: int, by: timedelta) -> None:
    """Move the job's last activity (its row and its audit events) ``by`` into the past."""
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        job.updated_at = job.updated_at - by  # set explicitly: onupdate does not apply
        for event in session.scalars(select(Event).where(Event.job_id == job_id)):
            event.at = event.at - by
