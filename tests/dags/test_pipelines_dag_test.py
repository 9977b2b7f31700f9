"""`dag.test()` of draw_export and draw_import against the emulator over real HTTP."""

from __future__ import annotations

import pydicom
from sqlalchemy import select

from dicom_ops.db.models import Job, Transfer
from dicom_ops.db.session import session_scope
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
