"""draw_export: send ready CT series, de-identified, to the DRAW autosegmentation server.

Runs within seconds of a series becoming ready (the `series_ready` asset) and every
DICOM_OPS_EXPORT_INTERVAL_MINUTES (default 10) as a safety net.

1. plan_jobs: claim the ready series; match each against the templates and create
   one job per series (duplicates refused), or mark it "no template" / "conflict".
2. claim_jobs: take the queued jobs, highest priority first, then oldest first.
3. deidentify_and_pack (one task per job): select the job's images, de-identify them
   in the job's own work folder, store the UID and subject maps, run the PHI egress
   check, zip with the template, sha256. A leak or a burned-in annotation fails the
   job here and nothing is sent.
4. upload_to_draw (one task per job, pool draw_upload): upload with checksum; waits
   in the triggerer while the server is busy; the server's task id is recorded
   before the task ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, DeltaTriggerTimetable
from dicom_ops.airflow.assets import SERIES_READY
from dicom_ops.airflow.notifiers import job_failure_notifiers
from dicom_ops.airflow.operators.deidentify import DeidentifyAndPackOperator
from dicom_ops.airflow.operators.draw import DrawUploadOperator
from dicom_ops.airflow.operators.jobs import ClaimJobsOperator, PlanJobsOperator
from dicom_ops.config import get_settings

settings = get_settings()

with DAG(
    dag_id="draw_export",
    schedule=AssetOrTimeSchedule(
        timetable=DeltaTriggerTimetable(timedelta(minutes=settings.export_interval_minutes)),
        assets=SERIES_READY,
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
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
    packed = DeidentifyAndPackOperator.partial(task_id="deidentify_and_pack").expand(
        job_id=claim_jobs.output
    )
    DrawUploadOperator.partial(task_id="upload_to_draw", pool="draw_upload").expand(
        job_id=packed.output
    )
    plan_jobs >> claim_jobs
