"""De-identify a job's images and pack them for the DRAW server (nothing leaves here)."""

from __future__ import annotations

from airflow.sdk import Context

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.operators.jobs import JobStepOperator
from dicom_ops.pipeline.export import prepare_upload


class DeidentifyAndPackOperator(JobStepOperator):
    """Select images -> de-identify -> store the maps -> egress check -> zip + sha256."""

    stage = "prepare"

    def run_step(self, job_id: int, context: Context) -> None:
        prepared = prepare_upload(task_settings(), job_id)
        self.log.info("job %d packed: %d images, sha256 %s", job_id, prepared.image_count,
                      prepared.sha256[:12])
