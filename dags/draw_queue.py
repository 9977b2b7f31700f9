"""draw_queue: register a batch of finished folders from the cached queue.

Trigger it by hand (or from the CLI: `dicom-ops queue`) when a backlog of
finished series folders sits in the queue folders (DICOM_OPS_QUEUE_FOLDERS).
Each run registers at most `number` folders, oldest first, optionally only from
the queue folder `subfolder`; run it again for the next batch. A folder is never
registered twice. The series it makes ready announce themselves on the
`series_ready` asset, which starts draw_export; a run that made none ready is skipped.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param
from dicom_ops.airflow.assets import SERIES_READY
from dicom_ops.airflow.operators.intake import RegisterQueuedFoldersOperator

with DAG(
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
):
    RegisterQueuedFoldersOperator(task_id="register_queued_folders",
                                  number="{{ params.number }}",
                                  subfolder="{{ params.subfolder }}",
                                  outlets=[SERIES_READY])
