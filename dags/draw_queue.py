"""draw_queue: register a batch of finished folders from the cached queue.

Trigger it by hand (or from the CLI: `dicom-ops queue`) when a backlog of
finished series folders sits in the queue folders (DICOM_OPS_QUEUE_FOLDERS).
Each run registers at most `number` folders, oldest first, optionally only from
the queue folder `subfolder`; run it again for the next batch. A folder is never
registered twice. The series it makes ready announce themselves on the
`series_ready` asset, which starts draw_export.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from dicom_ops.airflow.assets import SERIES_READY


@dag(
    dag_id="draw_queue",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["dicom-ops", "intake"],
    params={
        "number": Param(50, type="integer", minimum=1,
                        description="At most this many folders in this run."),
        "subfolder": Param("", type="string",
                           description="Only this queue folder (its name); empty: all of them."),
    },
    doc_md=__doc__,
)
def draw_queue():
    @task(outlets=[SERIES_READY])
    def register_queued_folders(params: dict | None = None) -> dict:
        """Register up to `number` finished folders as ready series."""
        from dicom_ops.airflow.app_settings import task_settings
        from dicom_ops.airflow.operators.jobs import redacted_errors
        from dicom_ops.intake.cached_queue import register_backlog

        with redacted_errors("registering queued folders"):
            result = register_backlog(task_settings(), number=int(params["number"]),
                                      subfolder=params["subfolder"] or None)
        if not result.series_ids:
            raise AirflowSkipException(f"no series became ready: {result.summary()}")
        return result.summary()

    register_queued_folders()


draw_queue()
