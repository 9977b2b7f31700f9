"""De-identify a job's images and pack them for the DRAW server (nothing leaves here)."""

from __future__ import annotations

from airflow.sdk import Context

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.operators.jobs import JobStepOperator
from dicom_ops.pipeline.export import prepare_upload
from dicom_ops.pipeline.resume import already_packed


class DeidentifyAndPackOperator(JobStepOperator):
    """Select images -> de-identify -> store the maps -> egress check -> zip + sha256."""

    stage = "prepare"

    def run_step(self, job_id: int, context: Context) -> None:
        if already_packed(task_settings(), job_id, actor=self.dag_id):
            self.log.info("job %d was packed by an earlier run; continuing at the upload",
                          job_id)
            return
        prepared = prepare_upload(task_settings(), job_id)
        self.log.info("job %d packed: %d images, sha256 %s", job_id, prepared.image_count,
                      prepared.sha256[:12])
