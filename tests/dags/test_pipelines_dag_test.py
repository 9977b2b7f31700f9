"""`dag.test()` of draw_export and draw_import against the emulator over real HTTP."""

from __future__ import annotations

import pydicom
from dicom_ops.db.models import Job, Transfer
from dicom_ops.db.session import session_scope
from sqlalchemy import select

from tests.dags.conftest import load_dag
from tests.factories import synthetic_patient
from tests.support.pipeline import ready_series_on_disk


def test_export_then_import_delivers_the_rtstruct_to_the_origin_folder(pipeline_env,
                                                                       draw_emulator):
    settings = pipeline_env
    ready = ready_series_on_disk(settings, patient_index=8)

    export_run = load_dag("draw_export").test()
    assert export_run.state == "success"
    with session_scope(settings.db_url) as session:
        transfer = session.scalars(select(Transfer)).one()
        job_id, task_id = transfer.job_id, transfer.server_task_id
        assert transfer.status == "sent"
    draw_emulator.wait_for_status(task_id)

    import_run = load_dag("draw_import").test()

    assert import_run.state == "success"
    delivered = list(ready.folder.glob("RS.*.dcm"))
    assert len(delivered) == 1
    rtstruct = pydicom.dcmread(delivered[0])
    assert rtstruct.PatientID == synthetic_patient(8).patient_id
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        assert job.status == "finished"
        assert job.turnaround_seconds is not None


def test_export_with_no_ready_series_does_nothing_and_succeeds(pipeline_env, draw_emulator):
    tasks_before = len(draw_emulator.tasks())

    run = load_dag("draw_export").test()

    assert run.state == "success"
    assert len(draw_emulator.tasks()) == tasks_before


def test_export_waits_for_a_busy_server_in_the_triggerer_then_uploads(pipeline_env,
                                                                      draw_emulator):
    settings = pipeline_env
    ready_series_on_disk(settings, patient_index=9)
    draw_emulator.set_faults(busy=4)

    run = load_dag("draw_export").test()

    assert run.state == "success"
    with session_scope(settings.db_url) as session:
        transfer = session.scalars(select(Transfer)).one()
        assert transfer.status == "sent" and transfer.server_task_id
        assert session.get(Job, transfer.job_id).status == "processing"


def test_a_permanent_failure_marks_the_job_failed_with_its_stage(pipeline_env, draw_emulator):
    settings = pipeline_env
    ready = ready_series_on_disk(settings, patient_index=10)
    from tests.factories import with_burned_in_annotation, write_series

    write_series([with_burned_in_annotation(ready.datasets[0])], ready.folder)

    run = load_dag("draw_export").test()

    assert run.state == "failed"
    with session_scope(settings.db_url) as session:
        job = session.scalars(select(Job)).one()
        assert job.status == "failed" and job.stage == "deidentify"
        assert "burned-in annotation" in job.error
        assert session.scalars(select(Transfer)).all() == []
