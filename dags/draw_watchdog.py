"""draw_watchdog: tell a person what needs one, once.

Every 5 minutes.

watch: checks that the DRAW server answers (GET /api/health/; busy counts as
answering), then sends, by webhook (DICOM_OPS_NOTIFY_WEBHOOK_CONN) and e-mail
(DICOM_OPS_NOTIFY_EMAIL_TO), what nobody has been told yet: jobs that failed (the
failing task already told, unless the job was failed by the poll or by recovery, or
the send failed), jobs `processing` with no activity for DICOM_OPS_NOTIFY_STUCK_MINUTES,
and the DRAW server not answering for DICOM_OPS_NOTIFY_DRAW_UNREACHABLE_MINUTES. Each
is sent once per channel and recorded in the job's audit events.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, DeltaTriggerTimetable
from dicom_ops.airflow.operators.watchdog import WatchdogOperator

with DAG(
    dag_id="draw_watchdog",
    schedule=DeltaTriggerTimetable(timedelta(minutes=5)),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # the next run, 5 minutes later, is the retry
    default_args={"retries": 0},
    tags=["dicom-ops", "notifications"],
    doc_md=__doc__,
):
    WatchdogOperator(task_id="watch")
