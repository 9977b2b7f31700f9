"""Stranded work is picked up, not waited out: a job a lost run left between its steps
is resumed by the next run of its DAG, from its recorded stage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dicom_ops.db.models import Event, Job, Transfer
from dicom_ops.db.session import session_scope
from dicom_ops.pipeline.export import prepare_upload
from dicom_ops.pipeline.import_results import poll_transfers
from sqlalchemy import select

from tests.dags.conftest import load_dag
from tests.support.pipeline import ready_series_on_disk
from tests.support.stranded import LOST_RUN, age_job, claim_in_a_lost_run

pytestmark = pytest.mark.slow


def events(settings, job_id: int) -> list[tuple[str, str]]:
    with session_scope(settings.db_url) as session:
        return [(e.kind, e.message) for e in session.scalars(
            select(Event).where(Event.job_id == job_id).order_by(Event.id))]


def test_the_next_export_resumes_jobs_a_lost_run_left_and_the_import_delivers_them(
        pipeline_env, draw_emulator):
    settings = pipeline_env
    folders = [ready_series_on_disk(settings, patient_index=index).folder
               for index in (30, 31, 32)]
    packed, claimed, busy = claim_in_a_lost_run(settings)
    prepare_upload(settings, packed)  # packed, then the run was lost before the upload
    # ``busy`` stands for a job another run is working on right now: it was active
    # within the interval, so it is not taken.
    interval = timedelta(minutes=settings.export_interval_minutes)
    for job_id in (packed, claimed):
        age_job(settings, job_id, by=2 * interval)

    export_run = load_dag("draw_export").test()

    assert export_run.state == "success"
    with session_scope(settings.db_url) as session:
        transfers = {t.job_id: t for t in session.scalars(select(Transfer))}
        assert {transfers[packed].status, transfers[claimed].status} == {"sent"}
        assert busy not in transfers
        job = session.get(Job, busy)
        assert (job.status, job.stage, job.claimed_by) == ("processing", "claimed", LOST_RUN)
        task_ids = [transfers[packed].server_task_id, transfers[claimed].server_task_id]
    for job_id in (packed, claimed):
        resumed = [message for kind, message in events(settings, job_id) if kind == "resumed"]
        assert resumed == [f"resumed by run {export_run.run_id} at stage "
                           f"{'package' if job_id == packed else 'claimed'} "
                           f"(left by {LOST_RUN})"]
    # the packed job went on from its recorded stage: its zip was kept, not packed again
    assert [kind for kind, _ in events(settings, packed)].count("packed") == 1
    assert "packing kept" in [kind for kind, _ in events(settings, packed)]
    for task_id in task_ids:
        draw_emulator.wait_for_status(task_id)

    import_run = load_dag("draw_import").test()

    assert import_run.state == "success"
    assert [len(list(folder.glob("RS.*.dcm"))) for folder in folders] == [1, 1, 0]
    with session_scope(settings.db_url) as session:
        assert session.get(Job, packed).status == session.get(Job, claimed).status == "finished"


def test_a_result_fetched_but_not_delivered_is_delivered_by_the_next_import(
        pipeline_env, draw_emulator):
    settings = pipeline_env
    ready = ready_series_on_disk(settings, patient_index=33)
    assert load_dag("draw_export").test().state == "success"
    with session_scope(settings.db_url) as session:
        transfer = session.scalars(select(Transfer)).one()
        job_id, task_id = transfer.job_id, transfer.server_task_id
    draw_emulator.wait_for_status(task_id)
    # a lost import run: it saw the result completed, then stopped before delivering
    with draw_emulator.client() as client:
        assert poll_transfers(settings, client).ready == [job_id]
    # import runs overlap: a delivery is taken over once it has been idle for an interval
    age_job(settings, job_id, timedelta(minutes=settings.import_interval_minutes + 1))

    import_run = load_dag("draw_import").test()

    assert import_run.state == "success"
    assert len(list(ready.folder.glob("RS.*.dcm"))) == 1
    with session_scope(settings.db_url) as session:
        assert session.get(Job, job_id).status == "finished"
        assert session.scalars(select(Transfer)).one().status == "confirmed"
