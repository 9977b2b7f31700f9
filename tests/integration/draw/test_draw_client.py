"""The DRAW client against the emulator over real HTTP: the verbs, token refresh, and each
failure as the exception a caller acts on."""

from __future__ import annotations

import hashlib
import socket
import time

import pydicom
import pytest
from dicom_ops.devtools.rtstruct_builder import referenced_uids
from dicom_ops.draw.client import DrawClient, ServerStatus
from dicom_ops.draw.errors import (
    DrawAuthError,
    DrawBusy,
    DrawChecksumMismatch,
    DrawNotFound,
    DrawRejected,
    DrawTransientError,
)

from tests.support.emulator import make_upload

UNKNOWN_TASK = "0" * 32


def _wait(client: DrawClient, task_id: str, timeout: float = 60.0) -> ServerStatus:
    deadline = time.monotonic() + timeout
    status = client.status(task_id)
    while status.state not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        status = client.status(task_id)
    return status


@pytest.fixture
def completed_task(draw_emulator, tmp_path):
    zip_path, checksum, images = make_upload(tmp_path)
    client = draw_emulator.client()
    task_id = client.upload(zip_path, checksum)
    assert _wait(client, task_id).state == "completed"
    return task_id, images


def test_a_whole_round_trip_from_upload_to_confirm(draw_emulator, tmp_path):
    client = draw_emulator.client()
    zip_path, checksum, images = make_upload(tmp_path)

    client.health()
    models = client.models()
    task_id = client.upload(zip_path, checksum)
    status = _wait(client, task_id)
    destination = tmp_path / "results" / "RS.dcm"
    sha256 = client.download_rtstruct(task_id, destination)
    client.confirm(task_id)

    assert models and all("model_id" in m for m in models)
    assert status == ServerStatus(raw="SEGMENTATION COMPLETED", state="completed", error=None)
    assert sha256 == hashlib.sha256(destination.read_bytes()).hexdigest()
    rtstruct = pydicom.dcmread(destination)
    assert referenced_uids(rtstruct)["images"] == {ds.SOPInstanceUID for ds in images}
    assert client.status(task_id).raw == "Transfer Completed"
    assert client.status(task_id).state == "completed"
    assert list(destination.parent.iterdir()) == [destination]  # no temp file left


def test_a_failed_task_reports_its_error(draw_emulator, tmp_path):
    draw_emulator.set_faults(fail_next=1)
    zip_path, checksum, _ = make_upload(tmp_path)
    client = draw_emulator.client()
    status = _wait(client, client.upload(zip_path, checksum))
    assert status.state == "failed" and status.raw == "FAILED"
    assert "emulated failure" in status.error


def test_upload_accepts_the_transaction_token_of_older_servers(draw_emulator, tmp_path):
    draw_emulator.set_faults(legacy_upload=1)
    zip_path, checksum, _ = make_upload(tmp_path)
    client = draw_emulator.client()
    task_id = client.upload(zip_path, checksum)
    assert client.status(task_id).state in {"pending", "processing", "completed"}


# --- tokens -----------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_once_and_the_call_repeated(draw_emulator):
    client = draw_emulator.client(access_token="expired-long-ago")

    models = client.models()

    assert models
    assert client.access_token != "expired-long-ago"
    assert draw_emulator.request("GET", "/api/models/", token=client.access_token
                                 ).status_code == 200


def test_an_upload_is_repeated_whole_after_a_refresh(draw_emulator, tmp_path):
    zip_path, checksum, _ = make_upload(tmp_path)
    client = draw_emulator.client(access_token="expired-long-ago")
    task_id = client.upload(zip_path, checksum)
    assert _wait(client, task_id).state == "completed"


def test_a_second_401_after_refreshing_is_an_auth_error(draw_emulator):
    draw_emulator.set_faults(token_expiry=0)  # even fresh tokens are refused
    client = draw_emulator.client()
    with pytest.raises(DrawAuthError, match="GET /api/models/ answered 401 even after"):
        client.models()


def test_a_refused_refresh_token_is_an_auth_error(draw_emulator):
    client = draw_emulator.client(access_token="expired", refresh_token="not-the-refresh-token")
    with pytest.raises(DrawAuthError, match="refused the refresh token"):
        client.models()


def test_without_a_refresh_token_a_401_is_an_auth_error_at_once(draw_emulator):
    client = draw_emulator.client(access_token="expired", refresh_token=None)
    with pytest.raises(DrawAuthError, match="no refresh token"):
        client.models()


# --- failures ---------------------------------------------------------------------------


def test_a_busy_server_raises_draw_busy_with_its_retry_after(draw_emulator, tmp_path):
    draw_emulator.set_faults(busy=60)
    client = draw_emulator.client()
    zip_path, checksum, _ = make_upload(tmp_path)
    with pytest.raises(DrawBusy) as health:
        client.health()
    with pytest.raises(DrawBusy, match="POST /api/upload/ answered 503"):
        client.upload(zip_path, checksum)
    assert 0 < health.value.retry_after <= 60


def test_an_unknown_task_is_draw_not_found(draw_emulator, tmp_path):
    client = draw_emulator.client()
    with pytest.raises(DrawNotFound, match=f"GET /api/upload/{UNKNOWN_TASK}/status/ answered 404"):
        client.status(UNKNOWN_TASK)
    with pytest.raises(DrawNotFound):
        client.download_rtstruct(UNKNOWN_TASK, tmp_path / "RS.dcm")
    assert not (tmp_path / "RS.dcm").exists()


def test_a_vanished_task_is_draw_not_found(draw_emulator, tmp_path):
    draw_emulator.set_faults(vanish_next=1)
    zip_path, checksum, _ = make_upload(tmp_path)
    client = draw_emulator.client()
    task_id = client.upload(zip_path, checksum)
    with pytest.raises(DrawNotFound):
        client.status(task_id)


def test_a_bad_checksum_is_rejected_naming_endpoint_status_and_problem(draw_emulator, tmp_path):
    zip_path, _, _ = make_upload(tmp_path)
    client = draw_emulator.client()
    with pytest.raises(DrawRejected) as rejected:
        client.upload(zip_path, "0" * 64)
    assert "POST /api/upload/ answered 400: checksum mismatch" in str(rejected.value)
    assert rejected.value.status_code == 400


def test_a_server_error_is_transient(draw_emulator):
    draw_emulator.set_faults(error_every=1)
    with pytest.raises(DrawTransientError, match="GET /api/models/ answered 500") as failed:
        draw_emulator.client().models()
    assert failed.value.status_code == 500


def test_a_server_that_is_not_there_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        client = DrawClient(f"http://127.0.0.1:{port}", access_token="t", timeout=5)
        with pytest.raises(DrawTransientError, match="cannot reach"):
            client.health()


def test_a_download_with_a_wrong_checksum_leaves_nothing_behind(draw_emulator, completed_task,
                                                                 tmp_path):
    task_id, _ = completed_task
    destination = tmp_path / "results" / "RS.dcm"
    destination.parent.mkdir()
    draw_emulator.set_faults(wrong_checksum=1)
    client = draw_emulator.client()

    with pytest.raises(DrawChecksumMismatch, match="X-File-Checksum"):
        client.download_rtstruct(task_id, destination)

    assert list(destination.parent.iterdir()) == []
    client.download_rtstruct(task_id, destination)  # the next, honest download works
    assert destination.exists()


def test_a_wrong_checksum_never_replaces_an_earlier_good_download(draw_emulator, completed_task,
                                                                   tmp_path):
    task_id, _ = completed_task
    destination = tmp_path / "results" / "RS.dcm"
    client = draw_emulator.client()
    client.download_rtstruct(task_id, destination)
    good = destination.read_bytes()
    draw_emulator.set_faults(wrong_checksum=1)
    with pytest.raises(DrawChecksumMismatch):
        client.download_rtstruct(task_id, destination)
    assert destination.read_bytes() == good
    assert list(destination.parent.iterdir()) == [destination]


def test_downloading_a_result_that_is_not_ready_is_rejected(draw_emulator, tmp_path):
    draw_emulator.set_faults(slow=30)
    zip_path, checksum, _ = make_upload(tmp_path)
    client = draw_emulator.client()
    task_id = client.upload(zip_path, checksum)
    with pytest.raises(DrawRejected, match="answered 409"):
        client.download_rtstruct(task_id, tmp_path / "RS.dcm")
    assert not (tmp_path / "RS.dcm").exists()
