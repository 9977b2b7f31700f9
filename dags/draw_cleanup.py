"""draw_cleanup: keep the disk from filling, never touching work in flight.

Runs every DICOM_OPS_CLEANUP_INTERVAL_HOURS (default 24), or by hand with params.

clean_up: removes what is older than its area's retention: upload zips and work
folders of jobs that have ended, quarantined files, `.tmp` folders of series nobody
has sent to for a long time, and (only if a retention is set for them) datastore
series folders and audit events. Below the free-disk watermark
(DICOM_OPS_CLEANUP_WATERMARK) it removes more of what is allowed to go, oldest first,
until free space is back above it. A series still receiving, a job queued, processing
or waiting for the DRAW server is never touched. The task log has the report: counts
and bytes per area, and what was skipped and why.

Params: `dry_run` lists what would go and deletes nothing; `older_than_hours`
replaces every area's retention for this run (areas kept forever stay kept).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, DeltaTriggerTimetable, Param
from dicom_ops.airflow.operators.cleanup import CleanupOperator
from dicom_ops.config import get_settings

settings = get_settings()

with DAG(
    dag_id="draw_cleanup",
    schedule=DeltaTriggerTimetable(timedelta(hours=settings.cleanup_interval_hours)),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    params={
        "dry_run": Param(False, type="boolean",
                         description="List what would be removed; delete nothing."),
        "older_than_hours": Param(None, type=["null", "number"], minimum=0,
                                  description="Replace every area's retention for this run "
                                              "(empty: the configured retentions)."),
    },
    default_args={"retries": 1, "retry_delay": timedelta(minutes=15)},
    tags=["dicom-ops", "cleanup"],
    doc_md=__doc__,
):
    CleanupOperator(task_id="clean_up", dry_run="{{ params.dry_run }}",
                    older_than_hours="{{ params.older_than_hours }}")
