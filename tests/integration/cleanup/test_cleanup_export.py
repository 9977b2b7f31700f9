"""Cleanup in the middle of an export: the job's work folder survives every run while
the job is processing or waiting for the DRAW server, and the job still completes."""

from __future__ import annotations

from dataclasses import replace

from dicom_ops.cleanup.disk import snapshot
from dicom_ops.cleanup.run import run_cleanup
from dicom_ops.db.models import Job, Transfer
from dicom_ops.db.session import session_scope
from dicom_ops.jobs.claims import claim_next_job
from dicom_ops.jobs.planning import plan_ready_series
from dicom_ops.pipeline.export import prepare_upload, upload_prepared
from dicom_ops.pipeline.import_results import fetch_and_deliver, poll_transfers
from dicom_ops.pipeline.workspace import job_work_dir
from dicom_ops.templates import load_templates
from sqlalchemy import select

from tests.support.pipeline import ready_series_on_disk


def eager_cleanup(settings):
    """Every retention overridden to 0 and the disk below the watermark."""
    return run_cleanup(replace(settings, cleanup_watermark=1 << 40), older_than_hours=0,
                       free_space=lambda _: 0)


def test_cleanup_during_an_export_leaves_the_job_alone_and_the_job_still_completes(
        settings, db_url, draw_emulator):
    settings = replace(settings, db_url=db_url)
    ready = ready_series_on_disk(settings, patient_index=6)
    origin_files = snapshot(ready.folder)
    plan_ready_series(settings.db_url, load_templates(settings.templates_dir))
    job_id = claim_next_job(settings.db_url, "test")
    prepared = prepare_upload(settings, job_id)
    work = job_work_dir(settings, job_id)
    packed = snapshot(work)

    while_processing = eager_cleanup(settings)

    assert snapshot(work) == packed and prepared.zip_path.exists()
    assert while_processing.areas["work"].skipped == {"job processing": 1}
    client = draw_emulator.client()
    upload_prepared(settings, job_id, client)

    while_waiting = eager_cleanup(settings)

    assert snapshot(work) == packed
    assert while_waiting.areas["work"].skipped == {"job waiting for the DRAW server": 1}
    with session_scope(settings.db_url) as session:
        task_id = session.scalars(select(Transfer.server_task_id)).one()
    draw_emulator.wait_for_status(task_id)
    assert poll_transfers(settings, client).ready == [job_id]
    delivered = fetch_and_deliver(settings, job_id, client)
    with session_scope(settings.db_url) as session:
        assert session.get(Job, job_id).status == "finished"

    after = eager_cleanup(settings)

    assert not work.exists()
    assert after.areas["work"].labels == [f"job {job_id}"]
    assert delivered.exists()  # the datastore (origin folder) is kept forever by default
    assert {k: v for k, v in snapshot(ready.folder).items() if k != delivered.name} \
        == origin_files
