"""Uploads the emulator must refuse, each with a 400 that names the problem, and
nothing of a refused upload left behind on the server."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.support.emulator import (
    DEFAULT_TEMPLATE,
    build_upload_zip,
    make_upload,
    sha256_of,
    small_series,
    start_emulator,
)

SIZE_LIMIT = "4MiB"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    emulator = start_emulator(tmp_path_factory.mktemp("uploads"), max_unpacked_size=SIZE_LIMIT)
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def series():
    return small_series(slices=2)


def _refused(emulator, zip_path, checksum=None) -> str:
    tasks_before = len(emulator.tasks())
    answer = emulator.upload(zip_path, checksum)
    assert answer.status_code == 400, answer.text
    assert len(emulator.tasks()) == tasks_before  # no task was made of it
    assert list((emulator.data_dir / "incoming").iterdir()) == []  # nothing left behind
    return answer.json()["detail"]


def test_a_valid_upload_is_accepted(emulator, tmp_path, series):
    zip_path, checksum, _ = make_upload(tmp_path, series=series)
    answer = emulator.upload(zip_path, checksum)
    assert answer.status_code == 200 and answer.json()["task_id"]


def test_a_checksum_that_does_not_match_the_file_is_refused(emulator, tmp_path, series):
    zip_path, checksum, _ = make_upload(tmp_path, series=series)
    wrong = ("0" if checksum[0] != "0" else "1") + checksum[1:]
    detail = _refused(emulator, zip_path, wrong)
    assert "checksum mismatch" in detail and checksum in detail


def test_an_upload_without_a_checksum_is_refused(emulator, tmp_path, series):
    zip_path, _, _ = make_upload(tmp_path, series=series)
    assert "checksum missing" in _refused(emulator, zip_path, "")


def test_an_upload_without_a_file_is_refused(emulator):
    answer = emulator.request("POST", "/api/upload/", data={"checksum": "0" * 64})
    assert answer.status_code == 400 and "'file'" in answer.json()["detail"]


def test_a_file_that_is_not_a_zip_is_refused(emulator, tmp_path):
    path = tmp_path / "upload.zip"
    path.write_bytes(b"PK but not really a zip archive" * 10)
    assert "not a zip" in _refused(emulator, path, sha256_of(path))


@pytest.mark.parametrize(("member", "problem"), [
    ("/etc/cron.d/evil.dcm", "absolute path"),
    ("C:\\Windows\\evil.dcm", "absolute path"),
    ("series/../../evil.dcm", "outside the zip"),
    ("..\\evil.dcm", "outside the zip"),
])
def test_a_member_that_would_land_outside_the_upload_is_refused(emulator, tmp_path, series,
                                                                 member, problem):
    zip_path = tmp_path / "upload.zip"
    checksum = build_upload_zip(series, DEFAULT_TEMPLATE, zip_path,
                                extra_members={member: b"\0" * 128 + b"DICM"})
    detail = _refused(emulator, zip_path, checksum)
    assert problem in detail and member in detail


def test_a_member_that_is_not_dicom_is_refused_by_name(emulator, tmp_path, series):
    zip_path = tmp_path / "upload.zip"
    checksum = build_upload_zip(series, DEFAULT_TEMPLATE, zip_path,
                                extra_members={"series/notes.txt": b"scanner log\n" * 20})
    detail = _refused(emulator, zip_path, checksum)
    assert "series/notes.txt" in detail and "not a DICOM file" in detail


def test_a_zip_that_unpacks_beyond_the_size_limit_is_refused(emulator, tmp_path, series):
    zip_path = tmp_path / "bomb.zip"
    checksum = build_upload_zip(series, DEFAULT_TEMPLATE, zip_path,
                                extra_members={"series/zeros.dcm": bytes(8 * 2**20)})
    assert zip_path.stat().st_size < 2**20  # small on the wire, big when unpacked
    detail = _refused(emulator, zip_path, checksum)
    assert "limit" in detail and "zip bomb" in detail


def test_an_upload_without_the_template_is_refused(emulator, tmp_path, series):
    zip_path = tmp_path / "upload.zip"
    checksum = build_upload_zip(series, None, zip_path)
    assert "autosegmentation_template.yml is missing" in _refused(emulator, zip_path, checksum)


@pytest.mark.parametrize(("template", "problem"), [
    ("name: x\nmodels: {1: {map: {1: Body}\n", "not valid YAML at line"),
    ("- just\n- a list\n", "must be a mapping"),
    ("name: no models\n", "'models'"),
    ("models: {1: {name: M}}\n", "models.1.map"),
    ("models: {1: {map: {one: Body}}}\n", "'one' is not a number"),
    ("models: {x: {map: {1: Body}}}\n", "model id must be an integer"),
    ("models: {1: {map: {1: ''}}}\n", "structure name"),
])
def test_an_invalid_template_is_refused_naming_the_problem(emulator, tmp_path, series,
                                                           template, problem):
    zip_path = tmp_path / "upload.zip"
    checksum = build_upload_zip(series, template, zip_path)
    detail = _refused(emulator, zip_path, checksum)
    assert "autosegmentation_template.yml" in detail and problem in detail


def test_a_zip_with_only_the_template_is_refused(emulator, tmp_path):
    zip_path = tmp_path / "upload.zip"
    checksum = build_upload_zip([], DEFAULT_TEMPLATE, zip_path)
    assert "no DICOM files" in _refused(emulator, zip_path, checksum)


def test_a_symbolic_link_member_is_refused(emulator, tmp_path, series):
    zip_path = tmp_path / "upload.zip"
    build_upload_zip(series, DEFAULT_TEMPLATE, zip_path)
    link = zipfile.ZipInfo("series/link.dcm")
    link.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(zip_path, "a") as archive:
        archive.writestr(link, "/etc/passwd")
    assert "symbolic link" in _refused(emulator, zip_path, sha256_of(zip_path))


def test_files_in_any_folder_of_the_zip_are_accepted(emulator, tmp_path, series):
    buffer = io.BytesIO()
    series[0].save_as(buffer, enforce_file_format=True)
    zip_path = tmp_path / "nested.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("a/b/c/CT1.dcm", buffer.getvalue())
        archive.writestr("a/", b"")
        archive.writestr("autosegmentation_template.yml", "models: {1: {map: {1: Body}}}\n")
    answer = emulator.upload(zip_path, sha256_of(zip_path))
    assert answer.status_code == 200
    task = emulator.wait_for_status(answer.json()["task_id"])
    assert task["status"] == "SEGMENTATION COMPLETED"
