"""What the emulator keeps on disk: tasks survive a restart, waiting ones resume, tokens stay
valid, and ``--keep-uploads`` keeps every zip and result for audit."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.emulator import make_upload, sha256_of, start_emulator

COMPLETED = "SEGMENTATION COMPLETED"


@pytest.fixture(scope="module")
def delayed(tmp_path_factory):
    """An emulator whose tasks wait 1.5 s before processing, so a restart can interrupt them."""
    emulator = start_emulator(tmp_path_factory.mktemp("delayed"), delay=1.5)
    yield emulator
    emulator.stop()


def _upload(emulator, folder, name="upload.zip") -> str:
    zip_path, checksum, _ = make_upload(folder, name=name)
    answer = emulator.upload(zip_path, checksum)
    assert answer.status_code == 200
    return answer.json()["task_id"]


def _status(emulator, task_id) -> dict:
    return emulator.request("GET", f"/api/upload/{task_id}/status/").json()


def test_a_new_task_is_pending_until_its_delay_has_passed(delayed, tmp_path):
    task_id = _upload(delayed, tmp_path)
    assert _status(delayed, task_id)["status"] == "PENDING"
    assert delayed.wait_for_status(task_id)["status"] == COMPLETED


def test_a_pending_task_resumes_after_a_restart(delayed, tmp_path):
    task_id = _upload(delayed, tmp_path)
    assert _status(delayed, task_id)["status"] == "PENDING"

    delayed.restart()

    assert _status(delayed, task_id)["status"] in {"PENDING", "PROCESSING", COMPLETED}
    assert delayed.wait_for_status(task_id)["status"] == COMPLETED
    assert delayed.request("GET", f"/api/rtstruct/{task_id}/").status_code == 200


def test_a_completed_result_is_still_there_after_a_restart(delayed, tmp_path):
    task_id = _upload(delayed, tmp_path)
    delayed.wait_for_status(task_id)
    before = delayed.request("GET", f"/api/rtstruct/{task_id}/")

    delayed.restart()

    after = delayed.request("GET", f"/api/rtstruct/{task_id}/")
    assert after.status_code == 200
    assert after.content == before.content
    assert after.headers["X-File-Checksum"] == hashlib.sha256(after.content).hexdigest()


def test_an_access_token_issued_before_a_restart_still_works(delayed):
    fresh = delayed.request("POST", "/api/token/refresh/", token=None,
                            json={"refresh_token": delayed.refresh_token}).json()["access_token"]

    delayed.restart()

    assert delayed.request("GET", "/api/models/", token=fresh).status_code == 200


def test_jittered_tasks_all_complete(tmp_path):
    emulator = start_emulator(tmp_path, delay=0.0, jitter=1.0)
    try:
        task_ids = [_upload(emulator, tmp_path, f"upload{i}.zip") for i in range(4)]
        statuses = [emulator.wait_for_status(task_id)["status"] for task_id in task_ids]
    finally:
        emulator.stop()
    assert statuses == [COMPLETED] * 4


def test_keep_uploads_keeps_the_zip_and_the_result_after_confirm(tmp_path):
    emulator = start_emulator(tmp_path, keep_uploads=True)
    try:
        zip_path, checksum, _ = make_upload(tmp_path)
        task_id = emulator.upload(zip_path, checksum).json()["task_id"]
        emulator.wait_for_status(task_id)
        confirmed = emulator.request("POST", f"/api/rtstruct/{task_id}/confirm/",
                                     json={"task_id": task_id, "status": "received"})
        again = emulator.request("GET", f"/api/rtstruct/{task_id}/")
    finally:
        emulator.stop()
    assert confirmed.status_code == 200
    kept = emulator.data_dir / "uploads" / f"{task_id}.zip"
    assert sha256_of(kept) == checksum
    assert again.status_code == 200  # the server's copy stayed


def test_without_keep_uploads_no_zip_is_kept(draw_emulator, tmp_path):
    task_id = _upload(draw_emulator, tmp_path)
    draw_emulator.wait_for_status(task_id)
    assert not (draw_emulator.data_dir / "uploads" / f"{task_id}.zip").exists()
    assert list((draw_emulator.data_dir / "incoming").iterdir()) == []
