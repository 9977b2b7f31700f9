"""The whole loop through the pipeline steps (no scheduler): a ready CT goes out
de-identified and its contours come back re-identified into the origin folder."""

from __future__ import annotations

import zipfile

import pydicom
import pytest
from dicom_ops.db.models import Job, Series, Transfer
from dicom_ops.db.session import session_scope
from dicom_ops.jobs.claims import claim_next_job
from dicom_ops.jobs.planning import plan_ready_series
from dicom_ops.pipeline.errors import JobFailed
from dicom_ops.pipeline.export import prepare_upload, upload_prepared
from dicom_ops.pipeline.import_results import fetch_and_deliver, poll_transfers
from dicom_ops.templates import load_templates
from sqlalchemy import select

from tests.factories import synthetic_patient, with_burned_in_annotation, write_series
from tests.support.pipeline import assert_rtstruct_for, ready_series_on_disk


def _export(settings, client) -> int:
    plan_ready_series(settings.db_url, load_templates(settings.templates_dir))
    job_id = claim_next_job(settings.db_url, "test")
    assert job_id is not None
    prepare_upload(settings, job_id)
    upload_prepared(settings, job_id, client)
    return job_id


def _job(settings, job_id) -> Job:
    with session_scope(settings.db_url) as session:
        return session.get(Job, job_id)


def test_ready_series_comes_back_as_a_reidentified_rtstruct_in_its_origin_folder(
        settings, draw_emulator):
    ready = ready_series_on_disk(settings, patient_index=3)
    client = draw_emulator.client()

    job_id = _export(settings, client)
    with session_scope(settings.db_url) as session:
        task_id = session.scalars(select(Transfer.server_task_id)).one()
    draw_emulator.wait_for_status(task_id)
    report = poll_transfers(settings, client)
    assert report.ready == [job_id]
    delivered = fetch_and_deliver(settings, job_id, client)

    assert delivered.parent == ready.folder and delivered.name.startswith("RS.")
    assert_rtstruct_for(pydicom.dcmread(delivered), synthetic_patient(3), ready.datasets)
    job = _job(settings, job_id)
    assert job.status == "finished" and job.turnaround_seconds > 0
    with session_scope(settings.db_url) as session:
        transfer = session.scalars(select(Transfer)).one()
        assert transfer.status == "confirmed"
        assert session.get(Series, ready.series_id).state == "done"


def test_the_upload_zip_holds_no_phi_and_the_template(settings, draw_emulator):
    ready_series_on_disk(settings, patient_index=5)
    plan_ready_series(settings.db_url, load_templates(settings.templates_dir))
    job_id = claim_next_job(settings.db_url, "test")
    prepared = prepare_upload(settings, job_id)

    with zipfile.ZipFile(prepared.zip_path) as zf:
        names = zf.namelist()
        blob = b"".join(zf.read(name) for name in names)
    assert "autosegmentation_template.yml" in names
    assert len([n for n in names if n.endswith(".dcm")]) == 6
    for phi in synthetic_patient(5).phi_strings():
        assert phi.encode() not in blob, phi


def test_burned_in_annotation_fails_the_job_and_sends_nothing(settings, draw_emulator):
    ready = ready_series_on_disk(settings, patient_index=1)
    write_series([with_burned_in_annotation(ready.datasets[2])], ready.folder)
    plan_ready_series(settings.db_url, load_templates(settings.templates_dir))
    job_id = claim_next_job(settings.db_url, "test")
    before = len(draw_emulator.tasks())

    with pytest.raises(JobFailed, match="burned-in annotation"):
        prepare_upload(settings, job_id)
    with pytest.raises(JobFailed, match="nothing to upload"):
        upload_prepared(settings, job_id, draw_emulator.client())
    assert len(draw_emulator.tasks()) == before


def test_server_failure_fails_the_job_with_the_servers_error(settings, draw_emulator):
    ready_series_on_disk(settings, patient_index=2)
    draw_emulator.set_faults(fail_next=1)
    client = draw_emulator.client()
    job_id = _export(settings, client)
    with session_scope(settings.db_url) as session:
        task_id = session.scalars(select(Transfer.server_task_id)).one()
    draw_emulator.wait_for_status(task_id)

    report = poll_transfers(settings, client)

    assert report.failed == [job_id]
    job = _job(settings, job_id)
    assert job.status == "failed" and job.stage == "server"
    assert "DRAW server failed the task" in job.error


def test_a_vanished_task_fails_the_job_as_not_found(settings, draw_emulator):
    ready_series_on_disk(settings, patient_index=4)
    draw_emulator.set_faults(vanish_next=1)
    client = draw_emulator.client()
    job_id = _export(settings, client)

    poll_transfers(settings, client)

    job = _job(settings, job_id)
    assert job.status == "failed" and job.error == "task not found on server"


def test_a_retried_upload_task_does_not_upload_twice(settings, draw_emulator):
    ready_series_on_disk(settings, patient_index=6)
    client = draw_emulator.client()
    job_id = _export(settings, client)
    tasks_before = len(draw_emulator.tasks())

    again = upload_prepared(settings, job_id, client)

    with session_scope(settings.db_url) as session:
        assert again == session.scalars(select(Transfer.server_task_id)).one()
    assert len(draw_emulator.tasks()) == tasks_before
