"""draw_export: send ready CT series, de-identified, to the DRAW autosegmentation server.

Runs within seconds of a series becoming ready (the `series_ready` asset) and every
DICOM_OPS_EXPORT_INTERVAL_MINUTES (default 10) as a safety net.

1. plan_jobs: claim the ready series; match each against the templates and create
   one job per series (duplicates refused), or mark it "no template" / "conflict".
2. claim_jobs: take the jobs for this run: first any a lost run left between its steps
   (no activity for one interval: resumed from their recorded stage), then the queued
   jobs, highest priority first, then oldest first.
3. job (one mapped group per job; one job's failure, retry or wait never touches
   another's tasks):
   a. deidentify_and_pack: select the job's images, de-identify them in the job's own
      work folder, store the UID and subject maps, run the PHI egress check, zip with
      the template, sha256 (skipped when an earlier run packed it already). A range
      error, a leak or a burned-in annotation fails the job here and nothing is sent.
   b. upload_to_draw (pool draw_upload): upload with checksum; waits in the triggerer
      while the server is busy; the server's task id is recorded before the task ends.
Permanent errors fail the job at once, without retries; transient ones are retried
with backoff (pipeline/failure_kinds.py has the table).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, DeltaTriggerTimetable, task_group
from dicom_ops.airflow.assets import SERIES_READY
from dicom_ops.airflow.notifiers import job_failure_notifiers
from dicom_ops.airflow.operators.deidentify import DeidentifyAndPackOperator
from dicom_ops.airflow.operators.draw import DrawUploadOperator
from dicom_ops.airflow.operators.jobs import ClaimJobsOperator, PlanJobsOperator
from dicom_ops.config import get_settings

settings = get_settings()
# The grid names each mapped instance by its job ("job 12"), never by a patient.
JOB_LABEL = "job {{ task.job_id }}"

with DAG(
    dag_id="draw_export",
    schedule=AssetOrTimeSchedule(
        timetable=DeltaTriggerTimetable(timedelta(minutes=settings.export_interval_minutes)),
        assets=SERIES_READY,
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Runs overlap, so a burst of series is not queued behind one run: every claim
    # (series, queued job, stranded job) is atomic, so no two runs work on one job.
    max_active_runs=16,
    default_args={
        "retries": 4,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": job_failure_notifiers(settings),
    },
    tags=["dicom-ops", "export"],
    doc_md=__doc__,
):
    plan_jobs = PlanJobsOperator(task_id="plan_jobs")
    claim_jobs = ClaimJobsOperator(task_id="claim_jobs", max_jobs=20)

    @task_group(group_id="job")
    def export_job(job_id: int) -> None:
        """One job's chain, mapped per job: a failed pack fails only its own upload."""
        packed = DeidentifyAndPackOperator(task_id="deidentify_and_pack", job_id=job_id,
                                           map_index_template=JOB_LABEL)
        uploaded = DrawUploadOperator(task_id="upload_to_draw", job_id=job_id,
                                      pool="draw_upload", map_index_template=JOB_LABEL)
        packed >> uploaded

    plan_jobs >> claim_jobs >> export_job.expand(job_id=claim_jobs.output)
