"""The DRAW API of the emulator over real HTTP, as a client author meets it, and the
RTSTRUCT it returns: valid, and pointing at exactly what was uploaded."""

from __future__ import annotations

import hashlib
from io import BytesIO

import numpy as np
import pydicom
import pytest
from dicom_ops.devtools.rtstruct_builder import read_rois, referenced_uids
from pydicom.uid import RTStructureSetStorage

from tests.support.emulator import DEFAULT_TEMPLATE, make_upload, small_series

UNKNOWN_TASK = "0" * 32


@pytest.fixture(scope="module")
def completed(draw_emulator_process, tmp_path_factory):
    """One upload segmented to completion: (task id, uploaded images, RTSTRUCT bytes, response)."""
    emulator = draw_emulator_process
    emulator.clear_faults()
    template = {**DEFAULT_TEMPLATE, "models": {
        **DEFAULT_TEMPLATE["models"],
        7: {"name": "HN", "config": "2d", "trainer_name": "t", "postprocess": "none",
            "map": {2: "SpinalCord", 1: "Brainstem"}},
    }}
    zip_path, checksum, images = make_upload(tmp_path_factory.mktemp("upload"),
                                             template=template)
    task_id = emulator.upload(zip_path, checksum).json()["task_id"]
    assert emulator.wait_for_status(task_id)["status"] == "SEGMENTATION COMPLETED"
    response = emulator.request("GET", f"/api/rtstruct/{task_id}/")
    assert response.status_code == 200
    return task_id, images, response.content, response


def _rtstruct(completed):
    return pydicom.dcmread(BytesIO(completed[2]))


# --- the API ----------------------------------------------------------------------------


def test_health_answers_ready_without_a_token(draw_emulator):
    response = draw_emulator.request("GET", "/api/health/", token=None)
    assert response.status_code == 200


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/models/"),
    ("POST", "/api/upload/"),
    ("GET", f"/api/upload/{UNKNOWN_TASK}/status/"),
    ("GET", f"/api/rtstruct/{UNKNOWN_TASK}/"),
    ("POST", f"/api/rtstruct/{UNKNOWN_TASK}/confirm/"),
])
@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_every_call_but_health_needs_the_access_token(draw_emulator, method, path, token):
    response = draw_emulator.request(method, path, token=token)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_models_list_ids_names_and_structure_maps(draw_emulator):
    models = draw_emulator.request("GET", "/api/models/").json()
    assert models
    for model in models:
        assert {"model_id", "model_name", "model_config", "model_trainer_name",
                "model_postprocess", "modelmap"} <= set(model)
        assert all({"mapid", "map_tg263_primary_name"} <= set(m) for m in model["modelmap"])


def test_an_upload_gets_a_task_id_its_status_knows(draw_emulator, tmp_path):
    zip_path, checksum, _ = make_upload(tmp_path)
    answer = draw_emulator.upload(zip_path, checksum)
    assert answer.status_code == 200
    task_id = answer.json()["task_id"]
    status = draw_emulator.request("GET", f"/api/upload/{task_id}/status/").json()
    assert status["task_id"] == task_id
    assert status["status"] in {"PENDING", "PROCESSING", "SEGMENTATION COMPLETED"}


@pytest.mark.parametrize("task_id", [UNKNOWN_TASK, "..%2F..%2Fetc", "not-a-task"])
@pytest.mark.parametrize(("method", "template"), [
    ("GET", "/api/upload/{}/status/"),
    ("GET", "/api/rtstruct/{}/"),
    ("POST", "/api/rtstruct/{}/confirm/"),
])
def test_a_task_the_server_does_not_know_is_404(draw_emulator, task_id, method, template):
    assert draw_emulator.request(method, template.format(task_id)).status_code == 404


def test_the_download_carries_the_sha256_of_its_body(completed):
    _, _, body, response = completed
    assert response.headers["X-File-Checksum"] == hashlib.sha256(body).hexdigest()
    assert response.headers["content-type"].startswith("application/dicom")


def test_a_result_not_ready_yet_is_refused_with_409(draw_emulator, tmp_path):
    draw_emulator.set_faults(slow=30)
    zip_path, checksum, _ = make_upload(tmp_path)
    task_id = draw_emulator.upload(zip_path, checksum).json()["task_id"]
    assert draw_emulator.wait_for_status(task_id, {"PROCESSING"})["status"] == "PROCESSING"
    response = draw_emulator.request("GET", f"/api/rtstruct/{task_id}/")
    assert response.status_code == 409
    assert "PROCESSING" in response.json()["detail"]
    assert draw_emulator.request("POST", f"/api/rtstruct/{task_id}/confirm/").status_code == 409


def test_confirm_deletes_the_server_copy(draw_emulator, tmp_path):
    zip_path, checksum, _ = make_upload(tmp_path)
    task_id = draw_emulator.upload(zip_path, checksum).json()["task_id"]
    draw_emulator.wait_for_status(task_id)
    assert draw_emulator.request("GET", f"/api/rtstruct/{task_id}/").status_code == 200
    task_folder = draw_emulator.data_dir / "tasks" / task_id
    assert (task_folder / "rtstruct.dcm").exists()

    answer = draw_emulator.request("POST", f"/api/rtstruct/{task_id}/confirm/", json={
        "task_id": task_id, "status": "received", "timestamp": "2026-03-15T09:30:00+00:00"})

    assert answer.status_code == 200
    assert not (task_folder / "rtstruct.dcm").exists() and not (task_folder / "input").exists()
    status = draw_emulator.request("GET", f"/api/upload/{task_id}/status/").json()
    assert status["status"] == "Transfer Completed"
    assert draw_emulator.request("GET", f"/api/rtstruct/{task_id}/").status_code == 404


def test_a_task_that_cannot_be_segmented_ends_failed_with_an_error(draw_emulator, tmp_path):
    images = small_series(slices=3)
    del images[1].PixelData
    zip_path, checksum, _ = make_upload(tmp_path, series=images)
    task_id = draw_emulator.upload(zip_path, checksum).json()["task_id"]
    status = draw_emulator.wait_for_status(task_id)
    assert status["status"] == "FAILED"
    assert "no pixel data" in status["error"]
    assert draw_emulator.request("GET", f"/api/rtstruct/{task_id}/").status_code == 409


def test_refresh_issues_an_access_token_that_works(draw_emulator):
    answer = draw_emulator.request("POST", "/api/token/refresh/", token=None,
                                   json={"refresh_token": draw_emulator.refresh_token})
    assert answer.status_code == 200
    body = answer.json()
    assert body["access_token"] != draw_emulator.token and body["expires_in"] > 0
    models = draw_emulator.request("GET", "/api/models/", token=body["access_token"])
    assert models.status_code == 200


def test_refresh_accepts_a_form_as_well_as_json(draw_emulator):
    answer = draw_emulator.request("POST", "/api/token/refresh/", token=None,
                                   data={"refresh": draw_emulator.refresh_token})
    assert answer.status_code == 200 and answer.json()["access_token"]


def test_refresh_with_a_wrong_or_missing_refresh_token_is_refused(draw_emulator):
    wrong = draw_emulator.request("POST", "/api/token/refresh/", token=None,
                                  json={"refresh_token": "guess"})
    missing = draw_emulator.request("POST", "/api/token/refresh/", token=None, json={})
    assert wrong.status_code == 401
    assert missing.status_code == 400 and "refresh_token" in missing.json()["detail"]


# --- the RTSTRUCT -----------------------------------------------------------------------


def test_rtstruct_is_an_rt_structure_set(completed):
    rtstruct = _rtstruct(completed)
    assert rtstruct.SOPClassUID == RTStructureSetStorage
    assert rtstruct.file_meta.MediaStorageSOPClassUID == RTStructureSetStorage
    assert rtstruct.Modality == "RTSTRUCT"


def test_rtstruct_references_exactly_what_was_uploaded(completed):
    _, images, _, _ = completed
    found = referenced_uids(_rtstruct(completed))
    assert found["frame_of_reference"] == {images[0].FrameOfReferenceUID}
    assert found["study"] == {images[0].StudyInstanceUID}
    assert found["series"] == {images[0].SeriesInstanceUID}
    assert found["images"] == {ds.SOPInstanceUID for ds in images}
    assert _rtstruct(completed).PatientID == images[0].PatientID


def test_roi_names_come_from_the_template_maps_in_order(completed):
    names = [roi.name for roi in read_rois(_rtstruct(completed))]
    assert names == ["External", "Lung_L", "Lung_R", "Heart", "Brainstem", "SpinalCord"]


def test_structures_the_emulator_cannot_draw_are_present_but_empty(completed):
    rois = {roi.name: roi for roi in read_rois(_rtstruct(completed))}
    for name in ("Heart", "Brainstem", "SpinalCord"):
        assert rois[name].contours == {}


def test_every_slice_with_body_has_a_body_contour_in_its_image_plane(completed):
    _, images, _, _ = completed
    external = next(r for r in read_rois(_rtstruct(completed)) if r.name == "External")
    by_uid = {ds.SOPInstanceUID: ds for ds in images}
    assert set(external.contours) == set(by_uid)  # every phantom slice has body
    for uid, polygons in external.contours.items():
        ds = by_uid[uid]
        origin = np.array([float(v) for v in ds.ImagePositionPatient])
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
        along_row, along_column = orientation[:3], orientation[3:]
        extent_columns = float(ds.PixelSpacing[1]) * (ds.Columns - 1)
        extent_rows = float(ds.PixelSpacing[0]) * (ds.Rows - 1)
        for points in polygons:
            offsets = points - origin
            assert np.abs(offsets @ np.cross(along_row, along_column)).max() < 0.01
            u, v = offsets @ along_row, offsets @ along_column
            assert u.min() >= -1 and u.max() <= extent_columns + 1  # inside the image
            assert v.min() >= -1 and v.max() <= extent_rows + 1


def test_lungs_are_drawn_on_their_own_side_of_the_patient(completed):
    rois = {roi.name: roi for roi in read_rois(_rtstruct(completed))}
    left = np.vstack([p for ps in rois["Lung_L"].contours.values() for p in ps])
    right = np.vstack([p for ps in rois["Lung_R"].contours.values() for p in ps])
    assert left[:, 0].min() > 0 > right[:, 0].max()  # DICOM x grows to the patient's left


def test_the_emulator_log_holds_no_patient_data(draw_emulator, completed):
    _, images, _, _ = completed
    log = draw_emulator.log_text()
    assert "task " in log  # it did log the work
    patient_values = [str(images[0].PatientName), str(images[0].PatientID),
                      str(images[0].PatientBirthDate), str(images[0].AccessionNumber),
                      images[0].StudyInstanceUID, images[0].SeriesInstanceUID,
                      *(ds.SOPInstanceUID for ds in images)]
    assert [value for value in patient_values if value in log] == []
