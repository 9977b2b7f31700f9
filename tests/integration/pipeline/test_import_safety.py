"""The import half where a mistake puts contours on the wrong patient: many patients at
once, a server that mixes results up, damaged downloads, deadlines, forwarding."""

from __future__ import annotations

import json
from datetime import timedelta

import pydicom
import pytest
from dicom_ops.db.models import Job, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.devtools.rtstruct_builder import referenced_uids
from dicom_ops.jobs.claims import claim_next_job
from dicom_ops.jobs.planning import plan_ready_series
from dicom_ops.pipeline.errors import JobFailed
from dicom_ops.pipeline.export import prepare_upload, upload_prepared
from dicom_ops.pipeline.import_results import fetch_and_deliver, poll_transfers
from dicom_ops.templates import load_templates
from sqlalchemy import select

from tests.factories import synthetic_patient
from tests.support.emulator import start_emulator
from tests.support.pipeline import ready_series_on_disk


def _export_all(settings, client) -> dict[int, str]:
    """Plan, prepare and upload every ready series; job id -> server task id."""
    plan_ready_series(settings.db_url, load_templates(settings.templates_dir))
    while (job_id := claim_next_job(settings.db_url, "test")) is not None:
        prepare_upload(settings, job_id)
        upload_prepared(settings, job_id, client)
    with session_scope(settings.db_url) as session:
        return dict(session.execute(select(Transfer.job_id, Transfer.server_task_id)).all())


def _job(settings, job_id) -> Job:
    with session_scope(settings.db_url) as session:
        return session.get(Job, job_id)


@pytest.mark.slow
def test_twenty_patients_finishing_in_shuffled_order_each_get_only_their_own_contours(
        settings, tmp_path):
    emulator = start_emulator(tmp_path, delay=0.2, jitter=2.0)
    try:
        client = emulator.client()
        ready = {index: ready_series_on_disk(settings, patient_index=index)
                 for index in range(20)}
        jobs = _export_all(settings, client)
        assert len(jobs) == 20
        delivered = {}
        while len(delivered) < 20:
            for task_id in set(jobs.values()):
                emulator.wait_for_status(task_id)
            for job_id in poll_transfers(settings, client).ready:
                delivered[job_id] = fetch_and_deliver(settings, job_id, client)
    finally:
        emulator.stop()

    for index, series in ready.items():
        files = list(series.folder.glob("RS.*.dcm"))
        assert len(files) == 1, index
        rtstruct = pydicom.dcmread(files[0])
        assert rtstruct.PatientID == synthetic_patient(index).patient_id
        refs = referenced_uids(rtstruct)
        own_images = {ds.SOPInstanceUID for ds in series.datasets}
        assert refs["images"] <= own_images and refs["contour_images"] <= own_images
        assert refs["series"] == {series.datasets[0].SeriesInstanceUID}


def test_a_result_belonging_to_another_patient_is_rejected_and_quarantined(
        settings, tmp_path):
    emulator = start_emulator(tmp_path, delay=0)
    try:
        client = emulator.client()
        first = ready_series_on_disk(settings, patient_index=11)
        ready_series_on_disk(settings, patient_index=12)
        jobs = _export_all(settings, client)
        for task_id in jobs.values():
            emulator.wait_for_status(task_id)
        job_a, job_b = sorted(jobs)
        # A server that mixes results up: task A now serves patient B's RTSTRUCT.
        emulator.stop()
        _swap_results(emulator.data_dir, jobs[job_a], jobs[job_b])
        emulator.start()

        poll_transfers(settings, client)
        with pytest.raises(JobFailed, match="RTSTRUCT rejected"):
            fetch_and_deliver(settings, job_a, client)
    finally:
        emulator.stop()

    assert list(first.folder.glob("RS.*")) == []
    with session_scope(settings.db_url) as session:
        transfer = session.scalars(select(Transfer).where(Transfer.job_id == job_a)).one()
        assert transfer.status == "completed" and transfer.confirmed_at is None
    quarantined = list((settings.quarantine_dir / f"job-{job_a}").glob("*.reason.txt"))
    assert len(quarantined) == 1


def _swap_results(data_dir, task_a: str, task_b: str) -> None:
    folder_a, folder_b = data_dir / "tasks" / task_a, data_dir / "tasks" / task_b
    file_a, file_b = folder_a / "rtstruct.dcm", folder_b / "rtstruct.dcm"
    bytes_a, bytes_b = file_a.read_bytes(), file_b.read_bytes()
    file_a.write_bytes(bytes_b)
    file_b.write_bytes(bytes_a)
    record_a, record_b = (json.loads((f / "task.json").read_text()) for f in (folder_a, folder_b))
    record_a["rtstruct_sha256"], record_b["rtstruct_sha256"] = (record_b["rtstruct_sha256"],
                                                                record_a["rtstruct_sha256"])
    (folder_a / "task.json").write_text(json.dumps(record_a))
    (folder_b / "task.json").write_text(json.dumps(record_b))


def test_a_checksum_mismatch_is_retried_and_then_delivered(settings, draw_emulator):
    series = ready_series_on_disk(settings, patient_index=13)
    client = draw_emulator.client()
    (job_id, task_id), = _export_all(settings, client).items()
    draw_emulator.wait_for_status(task_id)
    draw_emulator.set_faults(wrong_checksum=2)

    poll_transfers(settings, client)
    fetch_and_deliver(settings, job_id, client)

    assert len(list(series.folder.glob("RS.*.dcm"))) == 1
    assert _job(settings, job_id).status == "finished"


def test_a_download_that_never_matches_its_checksum_delivers_nothing(settings, draw_emulator):
    series = ready_series_on_disk(settings, patient_index=14)
    client = draw_emulator.client()
    (job_id, task_id), = _export_all(settings, client).items()
    draw_emulator.wait_for_status(task_id)
    draw_emulator.set_faults(wrong_checksum=10)

    poll_transfers(settings, client)
    with pytest.raises(JobFailed, match="did not match the server's checksum"):
        fetch_and_deliver(settings, job_id, client)

    assert list(series.folder.glob("RS.*")) == []
    with session_scope(settings.db_url) as session:
        assert session.scalars(select(Transfer.status)).one() == "completed"  # not confirmed


def test_a_task_past_its_deadline_fails_as_timed_out(settings, draw_emulator):
    ready_series_on_disk(settings, patient_index=15)
    draw_emulator.set_faults(slow=3600)
    client = draw_emulator.client()
    (job_id, _task_id), = _export_all(settings, client).items()

    poll_transfers(settings, client, now=utcnow() + timedelta(hours=7))

    job = _job(settings, job_id)
    assert job.status == "failed" and job.error.startswith("timed out")


def test_the_rtstruct_is_forwarded_to_a_real_orthanc(settings, draw_emulator, orthanc):
    ready_series_on_disk(settings, patient_index=16)
    client = draw_emulator.client()
    (job_id, task_id), = _export_all(settings, client).items()
    draw_emulator.wait_for_status(task_id)
    poll_transfers(settings, client)

    delivered = fetch_and_deliver(settings, job_id, client, destinations=[orthanc.node])

    sop_uid = pydicom.dcmread(delivered).SOPInstanceUID
    stored = orthanc.instance(sop_uid)
    assert stored["PatientID"] == synthetic_patient(16).patient_id
    assert stored["Modality"] == "RTSTRUCT"
