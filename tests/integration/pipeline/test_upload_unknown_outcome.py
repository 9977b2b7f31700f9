"""Uploads whose outcome is unknown resolve themselves, and each job delivers one RTSTRUCT.

The emulator really drops the connection after it has stored an upload
(fault ``drop_after_upload``): the server has a task, we have no task id.
"""

from __future__ import annotations

import pytest
from dicom_ops.db.models import Event, Job, Transfer, UploadAttempt
from dicom_ops.db.session import session_scope
from dicom_ops.jobs.claims import claim_next_job
from dicom_ops.jobs.planning import plan_ready_series
from dicom_ops.pipeline.errors import JobFailed
from dicom_ops.pipeline.export import UploadOutcomeUnknown, prepare_upload, upload_prepared
from dicom_ops.pipeline.import_results import fetch_and_deliver, poll_transfers
from dicom_ops.templates import load_templates
from sqlalchemy import select

from tests.support.pipeline import ready_series_on_disk

TRANSFERRED = "Transfer Completed"  # the emulator's status after a confirm


@pytest.fixture
def packed(settings):
    series = ready_series_on_disk(settings, patient_index=31)
    plan_ready_series(settings.db_url, load_templates(settings.templates_dir))
    job_id = claim_next_job(settings.db_url, "test")
    prepare_upload(settings, job_id)
    return job_id, series.folder


def _attempts(settings, job_id) -> list[tuple[int, str, str | None, str | None]]:
    with session_scope(settings.db_url) as session:
        return [(a.number, a.outcome, a.server_task_id, a.server_copy)
                for a in session.scalars(select(UploadAttempt).where(
                    UploadAttempt.job_id == job_id).order_by(UploadAttempt.number))]


def _events(settings, job_id) -> list[tuple[str, str]]:
    with session_scope(settings.db_url) as session:
        return [(e.kind, e.message) for e in session.scalars(
            select(Event).where(Event.job_id == job_id).order_by(Event.id))]


def _deliver_when_done(settings, emulator, client, task_ids) -> list[int]:
    for task_id in task_ids:
        emulator.wait_for_status(task_id)
    ready = poll_transfers(settings, client).ready
    for job_id in ready:
        fetch_and_deliver(settings, job_id, client)
    return ready


def test_a_dropped_answer_is_uploaded_again_and_one_rtstruct_is_delivered(
        settings, draw_emulator, packed):
    job_id, origin = packed
    client = draw_emulator.client()
    before = {task["task_id"] for task in draw_emulator.tasks()}
    draw_emulator.set_faults(drop_after_upload=1)

    # when the first attempt's answer is lost, the step says "upload again" (transient) ...
    with pytest.raises(UploadOutcomeUnknown, match="uploading again"):
        upload_prepared(settings, job_id, client)
    with session_scope(settings.db_url) as session:
        assert session.scalars(select(Transfer.status)).one() == "uploading"
    # ... and its retry uploads again by itself, no person needed
    task_id = upload_prepared(settings, job_id, client)

    assert [(n, outcome, known) for n, outcome, known, _ in _attempts(settings, job_id)] == [
        (1, "unknown", None), (2, "accepted", task_id)]
    server_tasks = [task for task in draw_emulator.tasks() if task["task_id"] not in before]
    assert len(server_tasks) == 2  # the server did receive both
    assert _deliver_when_done(settings, draw_emulator, client,
                              [task["task_id"] for task in server_tasks]) == [job_id]
    assert len(list(origin.glob("RS.*.dcm"))) == 1
    with session_scope(settings.db_url) as session:
        assert session.get(Job, job_id).status == "finished"
    # the task we know was confirmed (the server deleted its copy); the lost one we never
    # learned the id of, so it stays on the server, unconfirmed and undelivered
    statuses = {task["task_id"]: task["status"] for task in draw_emulator.tasks()}
    assert statuses[task_id] == TRANSFERRED
    (lost,) = {task["task_id"] for task in server_tasks} - {task_id}
    assert statuses[lost] != TRANSFERRED
    assert _attempts(settings, job_id)[-1][3] == "confirmed"


def test_answers_lost_more_often_than_the_bound_fail_the_job_saying_so(
        settings, draw_emulator, packed):
    job_id, _ = packed
    client = draw_emulator.client()
    bound = settings.max_upload_attempts
    draw_emulator.set_faults(drop_after_upload=bound + 1)

    for _ in range(bound - 1):
        with pytest.raises(UploadOutcomeUnknown):
            upload_prepared(settings, job_id, client)
    with pytest.raises(JobFailed) as failed:
        upload_prepared(settings, job_id, client)

    assert failed.value.stage == "upload"
    assert f"no answer to {bound} upload attempt(s)" in failed.value.reason
    assert "DICOM_OPS_MAX_UPLOAD_ATTEMPTS" in failed.value.reason
    assert [outcome for _, outcome, _, _ in _attempts(settings, job_id)] == ["unknown"] * bound
    # and a further try (an Airflow retry) sends nothing more
    tasks_before = len(draw_emulator.tasks())
    with pytest.raises(JobFailed, match="no answer to"):
        upload_prepared(settings, job_id, client)
    assert len(draw_emulator.tasks()) == tasks_before
    with session_scope(settings.db_url) as session:  # the server may hold copies: kept so
        assert session.scalars(select(Transfer.status)).one() == "uploading"


def test_of_two_known_results_the_first_is_delivered_and_the_other_only_confirmed(
        settings, draw_emulator, packed):
    # given a job uploaded, finished on the server, then packed and uploaded again (its
    # Airflow tasks were cleared and re-run): the server holds two tasks we know of
    job_id, origin = packed
    client = draw_emulator.client()
    first = upload_prepared(settings, job_id, client)
    draw_emulator.wait_for_status(first)
    assert poll_transfers(settings, client).ready == [job_id]  # completed, not yet fetched
    prepare_upload(settings, job_id)
    second = upload_prepared(settings, job_id, client)
    assert second != first

    # when both have finished and the import runs
    assert _deliver_when_done(settings, draw_emulator, client, [first, second]) == [job_id]

    # then one RTSTRUCT is delivered: the first result's; the second is confirmed to the
    # server (it deletes its copy) and recorded, never delivered
    assert len(list(origin.glob("RS.*.dcm"))) == 1
    with session_scope(settings.db_url) as session:
        transfer = session.scalars(select(Transfer)).one()
        assert (transfer.status, transfer.server_task_id) == ("confirmed", first)
        assert session.get(Job, job_id).status == "finished"
    statuses = {task["task_id"]: task["status"] for task in draw_emulator.tasks()}
    assert statuses[first] == statuses[second] == TRANSFERRED
    assert _attempts(settings, job_id) == [(1, "accepted", first, "confirmed"),
                                           (2, "accepted", second, "confirmed")]
    kinds = [kind for kind, _ in _events(settings, job_id)]
    assert ("further result confirmed",
            f"server task {second} (attempt 2): confirmed to the server (it deletes its "
            "copy), not delivered") in _events(settings, job_id)
    assert "result of another attempt" in kinds
