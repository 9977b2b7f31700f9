"""draw_import: bring finished contours home, re-identified, to where the CT came from.

Runs within seconds of the DRAW server finishing a task (the `draw_results` asset,
watched from the triggerer) and every DICOM_OPS_IMPORT_INTERVAL_MINUTES (default 15)
as a safety net.

1. poll_draw: ask the server about every waiting transfer. Completed -> deliver;
   FAILED -> job failed with the server's error; unknown task (404) -> job failed
   "task not found on server"; still working past DICOM_OPS_IMPORT_DEADLINE_HOURS ->
   job failed "timed out".
2. fetch_and_deliver (one task per finished job): download and verify the checksum,
   validate the RTSTRUCT and re-identify it (any UID not in the job's own map: rejected,
   quarantined, never delivered), write it atomically into the series' origin folder,
   C-STORE it to DICOM_OPS_DESTINATIONS, then confirm to the server; the job finishes
   with its turnaround recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, DeltaTriggerTimetable
from dicom_ops.airflow.assets import DRAW_RESULTS
from dicom_ops.airflow.notifiers import job_failure_notifiers
from dicom_ops.airflow.operators.draw import DeliverResultOperator, DrawPollOperator
from dicom_ops.config import get_settings

settings = get_settings()
# The grid names each mapped instance by its job ("job 12"), never by a patient.
JOB_LABEL = "job {{ task.job_id }}"

with DAG(
    dag_id="draw_import",
    schedule=AssetOrTimeSchedule(
        timetable=DeltaTriggerTimetable(timedelta(minutes=settings.import_interval_minutes)),
        assets=DRAW_RESULTS,
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Runs overlap, so a burst of results is not queued behind one run: a poll takes a
    # result under its row lock, and only a delivery idle for an interval is taken over.
    max_active_runs=16,
    default_args={
        "retries": 4,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": job_failure_notifiers(settings),
    },
    tags=["dicom-ops", "import"],
    doc_md=__doc__,
):
    poll_draw = DrawPollOperator(task_id="poll_draw")
    # One task per job for its whole chain (fetch -> validate -> deliver -> confirm), with
    # nothing downstream: one job's failure or retry never touches another's task.
    DeliverResultOperator.partial(
        task_id="fetch_and_deliver", map_index_template=JOB_LABEL,
    ).expand(job_id=poll_draw.output)
