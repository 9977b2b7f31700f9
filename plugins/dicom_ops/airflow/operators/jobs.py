"""Operators over the job queue, and the base every per-job step uses.

A per-job step runs one domain function for one job and asks the failure table
(``pipeline.failure_kinds``) what an error means. Permanent (``JobFailed``, a range
error, burned-in annotation, an egress hit, a refused upload, a rejected RTSTRUCT...):
the job is marked failed with its stage and reason and the task fails without
retrying. Transient (network, 5xx, a locked DB, anything unknown): retried with
backoff; when the retries are used up, ``on_failure_callback`` marks the job failed
too, so no job is ever left silently "processing".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.db.models import utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.jobs.lifecycle import fail_job, get_job, is_processing
from dicom_ops.pipeline.errors import JobFailed, StepError, redact_identifiers
from dicom_ops.pipeline.failure_kinds import classify
from dicom_ops.pipeline.plan import claim_jobs, plan_export

log = logging.getLogger(__name__)


@contextmanager
def redacted_errors(what: str) -> Iterator[None]:
    """Re-raise an unexpected error without identifiers (file paths in the datastore
    are original UIDs) and without its chained traceback: both reach the UI's task log.
    The full detail is logged at DEBUG, which the task log does not show by default."""
    try:
        yield
    except (AirflowException, JobFailed):
        raise
    except Exception as exc:
        log.debug("%s failed", what, exc_info=True)
        raise StepError(f"{what}: {type(exc).__name__}: "
                        f"{redact_identifiers(str(exc))}") from None


def mark_job_failed(job_id: int, stage: str, reason: str, actor: str) -> None:
    with session_scope(task_settings().db_url) as session:
        if is_processing(get_job(session, job_id).status):
            fail_job(session, job_id, stage=stage, error=reason, actor=actor)


def _fail_job_after_last_retry(context: Context) -> None:
    task = context["task"]
    job_id = getattr(task, "job_id", None)
    error = context.get("exception")
    if job_id is None or isinstance(error, AirflowFailException):
        return  # no job, or a permanent failure already recorded by the step itself
    tries = context["ti"].try_number
    mark_job_failed(int(job_id), task.stage,
                    f"gave up after {tries} tries: {type(error).__name__}: {error}",
                    actor=context["dag"].dag_id)


def _job_failed_first(kwargs: dict[str, Any]) -> list[Any]:
    """Mark the job failed, then run the callbacks the DAG gave (its notifiers read the
    failed job). Airflow puts default_args' callbacks in ``kwargs`` for mapped tasks and
    in ``default_args`` for plain ones; either would otherwise replace ours."""
    given = (kwargs.get("on_failure_callback")
             or (kwargs.get("default_args") or {}).get("on_failure_callback"))
    others = given if isinstance(given, list | tuple) else [given] if given else []
    return [_fail_job_after_last_retry, *(c for c in others if c is not _fail_job_after_last_retry)]


class JobStepOperator(BaseOperator):
    """Base of the per-job steps; subclasses implement ``run_step(job_id, context)``."""

    template_fields: Sequence[str] = ("job_id",)
    stage = "pipeline"
    ui_color = "#d9ecf2"

    def __init__(self, *, job_id: int | str, **kwargs: Any) -> None:
        kwargs["on_failure_callback"] = _job_failed_first(kwargs)
        super().__init__(**kwargs)
        self.job_id = job_id

    def execute(self, context: Context) -> int:
        job_id = int(self.job_id)
        started = utcnow()
        try:
            self.run_step(job_id, context)
        except Exception as exc:  # TaskDeferred is a BaseException: a deferral passes
            if isinstance(exc, AirflowException):
                raise
            failure = classify(exc)
            if failure.permanent:
                stage = failure.stage or self.stage_reached(job_id, since=started)
                self.fail_job_now(job_id, stage, failure.reason)
            log.debug("job %d at %s failed", job_id, self.stage, exc_info=True)
            # Transient: retried with backoff. No chained traceback: it can quote paths
            # named by original UIDs, and the task log shows it in the UI.
            raise StepError(f"job {job_id} at {self.stage}: {failure.reason}") from None
        return job_id

    def fail_job_now(self, job_id: int, stage: str, reason: str) -> None:
        """A permanent failure: the job is failed with ``stage`` and ``reason``, and the
        task fails without retrying."""
        mark_job_failed(job_id, stage, reason, actor=self.dag_id)
        raise AirflowFailException(f"job {job_id} failed at {stage}: {reason}") from None

    def stage_reached(self, job_id: int, *, since: datetime) -> str:
        """Where the job failed: the stage it recorded during this try, or, when it
        recorded none (the error came before, or rolled the record back), this step's."""
        with session_scope(task_settings().db_url) as session:
            job = get_job(session, job_id)
            recorded_now = job.stage and job.updated_at is not None and job.updated_at >= since
            return job.stage if recorded_now else self.stage

    def run_step(self, job_id: int, context: Context) -> None:
        raise NotImplementedError


class PlanJobsOperator(BaseOperator):
    """Recover abandoned work, then turn every ready series into a job (or a visible
    no-template / conflict state); returns how many jobs it created."""

    ui_color = "#e8f4e4"

    def __init__(self, *, max_series: int = 200, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_series = max_series

    def execute(self, context: Context) -> int:
        settings = task_settings()
        with redacted_errors("planning jobs"):
            report = plan_export(settings, max_series=self.max_series, actor=self.dag_id)
        self.log.info("%d new job(s) from ready series", len(report.created_jobs))
        return len(report.created_jobs)


class ClaimJobsOperator(BaseOperator):
    """Take up to ``max_jobs`` jobs: first those a lost run left between steps (quiet for
    one export interval), then queued ones, highest priority first; returns their ids."""

    template_fields: Sequence[str] = ("max_jobs",)
    ui_color = "#e8f4e4"

    def __init__(self, *, max_jobs: int | str = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_jobs = max_jobs

    def execute(self, context: Context) -> list[int]:
        settings, max_jobs = task_settings(), int(self.max_jobs)
        with redacted_errors("claiming jobs"):
            claimed = claim_jobs(
                settings.db_url, worker=context["dag_run"].run_id, max_jobs=max_jobs,
                stranded_after=timedelta(minutes=settings.export_interval_minutes))
        self.log.info("claimed %d job(s): %s", len(claimed), claimed)
        return claimed
