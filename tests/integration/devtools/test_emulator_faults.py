"""Each fault of the emulator, switched at run time by the admin endpoint and at start by
``--fault``, as a client would meet it over HTTP."""

from __future__ import annotations

import hashlib
import time

import pytest
import requests

from tests.support.emulator import make_upload, start_emulator

COMPLETED = "SEGMENTATION COMPLETED"


def _upload(emulator, folder, name="upload.zip") -> str:
    zip_path, checksum, _ = make_upload(folder, name=name)
    answer = emulator.upload(zip_path, checksum)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body.get("task_id") or body["transaction_token"]


def _status(emulator, task_id, token="default"):
    return emulator.request("GET", f"/api/upload/{task_id}/status/", token=token)


def _fresh_token(emulator) -> str:
    answer = emulator.request("POST", "/api/token/refresh/", token=None,
                              json={"refresh_token": emulator.refresh_token})
    assert answer.status_code == 200
    return answer.json()["access_token"]


# --- switched at run time -------------------------------------------------------------


def test_a_busy_server_answers_503_to_health_and_upload_with_retry_after(draw_emulator,
                                                                          tmp_path):
    draw_emulator.set_faults(busy=60)
    health = draw_emulator.request("GET", "/api/health/", token=None)
    zip_path, checksum, _ = make_upload(tmp_path)
    upload = draw_emulator.upload(zip_path, checksum)
    assert health.status_code == upload.status_code == 503
    assert 1 <= int(health.headers["Retry-After"]) <= 60
    assert draw_emulator.request("GET", "/api/models/").status_code == 200  # others still work


def test_a_busy_spell_ends_by_itself(draw_emulator):
    draw_emulator.set_faults(busy=0.5)
    time.sleep(0.7)
    assert draw_emulator.request("GET", "/api/health/", token=None).status_code == 200


def test_every_kth_request_answers_500(draw_emulator):
    draw_emulator.set_faults(error_every=3)
    codes = [draw_emulator.request("GET", "/api/models/").status_code for _ in range(6)]
    assert codes == [200, 200, 500, 200, 200, 500]


def test_expired_tokens_are_refused_and_tokens_refreshed_later_work(draw_emulator):
    draw_emulator.set_faults(token_expiry=1)
    time.sleep(1.1)
    assert draw_emulator.request("GET", "/api/models/").status_code == 401
    assert draw_emulator.request("GET", "/api/models/", token=_fresh_token(draw_emulator)
                                 ).status_code == 200


def test_token_expiry_zero_makes_even_fresh_tokens_fail(draw_emulator):
    draw_emulator.set_faults(token_expiry=0)
    fresh = _fresh_token(draw_emulator)
    assert draw_emulator.request("GET", "/api/models/").status_code == 401
    assert draw_emulator.request("GET", "/api/models/", token=fresh).status_code == 401
    draw_emulator.set_faults(token_expiry="off")
    assert draw_emulator.request("GET", "/api/models/", token=fresh).status_code == 200


def test_fail_next_ends_the_next_task_failed_and_then_stops(draw_emulator, tmp_path):
    draw_emulator.set_faults(fail_next=1)
    failing = _upload(draw_emulator, tmp_path, "first.zip")
    working = _upload(draw_emulator, tmp_path, "second.zip")
    failed = draw_emulator.wait_for_status(failing)
    assert failed["status"] == "FAILED" and "emulated failure" in failed["error"]
    assert draw_emulator.wait_for_status(working)["status"] == COMPLETED


def test_wrong_checksum_spoils_the_next_download_header_only(draw_emulator, tmp_path):
    task_id = _upload(draw_emulator, tmp_path)
    draw_emulator.wait_for_status(task_id)
    draw_emulator.set_faults(wrong_checksum=1)
    spoiled = draw_emulator.request("GET", f"/api/rtstruct/{task_id}/")
    honest = draw_emulator.request("GET", f"/api/rtstruct/{task_id}/")
    assert spoiled.content == honest.content
    assert spoiled.headers["X-File-Checksum"] != hashlib.sha256(spoiled.content).hexdigest()
    assert honest.headers["X-File-Checksum"] == hashlib.sha256(honest.content).hexdigest()


def test_slow_processing_keeps_a_task_processing_longer(draw_emulator, tmp_path):
    draw_emulator.set_faults(slow=1.0)
    uploaded = time.monotonic()
    task_id = _upload(draw_emulator, tmp_path)
    seen = [_status(draw_emulator, task_id).json()["status"]]
    while seen[-1] != COMPLETED and time.monotonic() < uploaded + 30:
        time.sleep(0.05)
        seen.append(_status(draw_emulator, task_id).json()["status"])
    assert seen[-1] == COMPLETED
    assert "PROCESSING" in seen
    assert time.monotonic() - uploaded >= 1.0  # never done before the slow spell is over


def test_a_vanished_task_is_404_everywhere(draw_emulator, tmp_path):
    draw_emulator.set_faults(vanish_next=1)
    vanished = _upload(draw_emulator, tmp_path, "first.zip")
    kept = _upload(draw_emulator, tmp_path, "second.zip")
    assert _status(draw_emulator, vanished).status_code == 404
    assert draw_emulator.request("GET", f"/api/rtstruct/{vanished}/").status_code == 404
    assert _status(draw_emulator, kept).status_code == 200


def test_the_admin_can_make_a_known_task_vanish(draw_emulator, tmp_path):
    task_id = _upload(draw_emulator, tmp_path)
    draw_emulator.wait_for_status(task_id)
    draw_emulator.forget_task(task_id)
    assert _status(draw_emulator, task_id).status_code == 404
    assert not (draw_emulator.data_dir / "tasks" / task_id).exists()


def test_legacy_upload_answers_with_a_transaction_token(draw_emulator, tmp_path):
    draw_emulator.set_faults(legacy_upload=1)
    zip_path, checksum, _ = make_upload(tmp_path)
    body = draw_emulator.upload(zip_path, checksum).json()
    assert set(body) == {"transaction_token"}
    assert _status(draw_emulator, body["transaction_token"]).status_code == 200


def test_drop_after_upload_keeps_the_task_but_closes_the_connection_unanswered(
        draw_emulator, tmp_path):
    # given the fault for one upload
    draw_emulator.set_faults(drop_after_upload=1)
    before = {task["task_id"] for task in draw_emulator.tasks()}
    zip_path, checksum, _ = make_upload(tmp_path)
    # when a client uploads, then it gets no answer at all: the connection just closes
    with pytest.raises(requests.ConnectionError):
        draw_emulator.upload(zip_path, checksum)
    # and yet the server has the task and processes it, as a real server would
    dropped = [task for task in draw_emulator.tasks() if task["task_id"] not in before]
    assert len(dropped) == 1
    assert draw_emulator.wait_for_status(dropped[0]["task_id"])["status"] == COMPLETED
    # and the fault is used up: the next upload is answered
    assert _upload(draw_emulator, tmp_path, name="again.zip")


def test_faults_are_listed_and_cleared(draw_emulator):
    current = draw_emulator.set_faults(error_every=1000, slow=2)
    assert current == {"error_every": 1000, "slow": 2.0}
    assert draw_emulator.request("GET", "/admin/faults").json() == current
    assert draw_emulator.clear_faults() == {}


def test_an_unknown_fault_or_bad_value_is_refused_naming_it(draw_emulator):
    unknown = draw_emulator.request("POST", "/admin/faults", json={"explode": 1})
    negative = draw_emulator.request("POST", "/admin/faults", json={"busy": -3})
    assert unknown.status_code == 400 and "explode" in unknown.json()["detail"]
    assert "busy" in unknown.json()["detail"]  # the known faults are listed
    assert negative.status_code == 400 and "busy" in negative.json()["detail"]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_the_admin_endpoint_needs_the_configured_token(draw_emulator, token):
    assert draw_emulator.request("POST", "/admin/faults", token=token,
                                 json={"busy": 60}).status_code == 401
    assert draw_emulator.request("GET", "/api/health/", token=None).status_code == 200


def test_the_admin_endpoint_is_immune_to_the_faults_it_switches(draw_emulator):
    draw_emulator.set_faults(token_expiry=0, error_every=1, busy=60)
    assert draw_emulator.request("GET", "/admin/faults").status_code == 200
    assert draw_emulator.clear_faults() == {}
    assert draw_emulator.request("GET", "/api/models/").status_code == 200


# --- switched by flags at start -------------------------------------------------------


@pytest.fixture(scope="module")
def flagged(tmp_path_factory):
    emulator = start_emulator(tmp_path_factory.mktemp("flagged"), token_lifetime=2,
                              faults={"busy": 600, "fail_next": 1})
    yield emulator
    emulator.stop()


def test_faults_given_as_flags_are_on_from_the_start(flagged, tmp_path):
    assert flagged.request("GET", "/api/health/", token=None).status_code == 503
    flagged.set_faults(busy=0)
    task_id = _upload(flagged, tmp_path)
    assert flagged.wait_for_status(task_id)["status"] == "FAILED"


def test_refreshed_tokens_expire_after_the_token_lifetime(flagged):
    fresh = _fresh_token(flagged)
    assert flagged.request("GET", "/api/models/", token=fresh).status_code == 200
    time.sleep(2.1)
    assert flagged.request("GET", "/api/models/", token=fresh).status_code == 401
    assert flagged.request("GET", "/api/models/").status_code == 200  # --token itself lasts

