"""A transient error that never clears is retried with backoff, and when the retries are
used up the job is failed with its stage and the reason, visibly, not left `processing`.

The upload of a mapped per-job task group gets the DAG's retries (4); the server
answers 500 to every request, so the job fails at `upload` after 5 tries.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from dicom_ops.db.models import Job
from dicom_ops.db.session import session_scope
from sqlalchemy import select

from tests.dags.conftest import job_tries, load_dag
from tests.factories import synthetic_patient
from tests.support.pipeline import ready_series_on_disk

pytestmark = pytest.mark.slow

PATIENT = 30


def test_a_server_error_that_never_clears_fails_the_job_after_its_retries(
        pipeline_env, draw_emulator):
    settings = pipeline_env
    ready_series_on_disk(settings, patient_index=PATIENT)
    draw_emulator.set_faults(error_every=1)  # every /api/ request answers 500

    dag = load_dag("draw_export", retry_delay=timedelta(seconds=1))
    retries = dag.get_task("job.upload_to_draw").retries
    run = dag.test()

    with session_scope(settings.db_url) as session:
        (job,) = session.scalars(select(Job)).all()
        status, stage, error = job.status, job.stage, job.error
    assert retries >= 1
    assert job_tries(run)[job.id]["job.upload_to_draw"] == ("failed", retries + 1)
    assert job_tries(run)[job.id]["job.deidentify_and_pack"] == ("success", 1)
    assert (status, stage) == ("failed", "upload")
    assert error.startswith(f"gave up after {retries + 1} tries: ")
    for phi in synthetic_patient(PATIENT).phi_strings():
        assert phi not in error
