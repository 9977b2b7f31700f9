"""Delivery into the origin folder (atomic, never over another file, never next to another
patient's images) and quarantine of rejected RTSTRUCTs."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from dicom_ops.delivery.origin import (
    DeliveryError,
    deliver_rtstruct,
    deliver_to_origin,
    quarantine_rtstruct,
    write_new_file,
)
from dicom_ops.delivery.reidentify import reidentify
from dicom_ops.delivery.validation import RtstructRejected
from dicom_ops.devtools.rtstruct_builder import referenced_uids

from tests.factories import write_series
from tests.support.deidentified_job import DeidentifiedJob, deidentified_job, to_bytes

UID_ROOT = "2.25"


@pytest.fixture(scope="module")
def job() -> DeidentifiedJob:
    return deidentified_job(0)


@pytest.fixture
def origin_folder(tmp_path: Path, job: DeidentifiedJob) -> Path:
    """Where the scanner's CT series was received."""
    folder = tmp_path / "datastore" / "study" / "series"
    write_series(job.originals, folder)
    return folder


@pytest.fixture
def quarantine_dir(data_root: Path) -> Path:
    return data_root / "quarantine"


def reidentified(job: DeidentifiedJob, sop_uid: str = "2.25.42") -> pydicom.Dataset:
    return reidentify(job.rtstruct(), job.uid_map, job.subject, pseudonym=job.pseudonym,
                      new_sop_instance_uid=sop_uid, new_series_instance_uid="2.25.43")


def deliver(job: DeidentifiedJob, raw: bytes, origin_folder: Path, quarantine_dir: Path,
            job_id: int = 7) -> Path:
    return deliver_rtstruct(raw, origin_folder, job_id=job_id, uid_map=job.uid_map,
                            subject=job.subject, pseudonym=job.pseudonym, uid_root=UID_ROOT,
                            quarantine_dir=quarantine_dir)


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_rtstruct_is_delivered_next_to_its_ct_named_after_its_sop_instance_uid(job,
                                                                               origin_folder):
    before = names(origin_folder)

    path = deliver_to_origin(reidentified(job), origin_folder)

    assert path == origin_folder / "RS.2.25.42.dcm"
    assert names(origin_folder) - before == {"RS.2.25.42.dcm"}  # no temporary file left
    stored = pydicom.dcmread(path)
    assert stored.PatientID == job.patient.patient_id
    assert stored.file_meta.MediaStorageSOPInstanceUID == "2.25.42"
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_delivering_the_same_file_again_changes_nothing(job, origin_folder):
    first = deliver_to_origin(reidentified(job), origin_folder)
    content = first.read_bytes()

    second = deliver_to_origin(reidentified(job), origin_folder)

    assert second == first and second.read_bytes() == content
    assert len([n for n in names(origin_folder) if n.startswith("RS.")]) == 1


def test_a_different_file_with_the_same_name_is_not_overwritten(job, origin_folder):
    # given a file already has the name
    taken = origin_folder / "RS.2.25.42.dcm"
    taken.write_bytes(b"someone else's file")
    before = names(origin_folder)

    with pytest.raises(DeliveryError, match="already exists with different content"):
        deliver_to_origin(reidentified(job), origin_folder)

    assert taken.read_bytes() == b"someone else's file"
    assert names(origin_folder) == before  # and no temporary file left behind


def test_origin_folder_holding_another_patients_images_gets_nothing(job, tmp_path):
    # given the folder on record now holds another patient's series
    folder = tmp_path / "reused"
    write_series(deidentified_job(1).originals, folder)
    before = names(folder)

    with pytest.raises(DeliveryError, match="holds 4 DICOM file.s. of another PatientID"):
        deliver_to_origin(reidentified(job), folder)

    assert names(folder) == before


def test_missing_origin_folder_is_reported_without_creating_it(job, tmp_path):
    folder = tmp_path / "cleaned-up"

    with pytest.raises(DeliveryError, match="origin folder no longer exists"):
        deliver_to_origin(reidentified(job), folder)

    assert not folder.exists()


def test_only_rtstructs_are_delivered(job, origin_folder):
    with pytest.raises(DeliveryError, match="only RT Structure Sets"):
        deliver_to_origin(job.originals[0], origin_folder)


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_hostile_sop_instance_uid_never_becomes_a_path(job, origin_folder):
    rtstruct = reidentified(job)
    rtstruct.SOPInstanceUID = "../../escape"

    with pytest.raises(DeliveryError, match="not a valid UID"):
        deliver_to_origin(rtstruct, origin_folder)


def test_failed_write_leaves_neither_the_file_nor_a_temporary_one(tmp_path):
    # given data that fails half way through writing
    target = tmp_path / "RS.1.dcm"

    with pytest.raises(TypeError):
        write_new_file(target, object())  # type: ignore[arg-type]

    assert names(tmp_path) == set()


def test_quarantined_file_is_kept_with_its_reason(tmp_path, quarantine_dir):
    raw = b"DICM? not really"

    kept = quarantine_rtstruct(raw, quarantine_dir, "RTSTRUCT references an image UID that is "
                               "not this job's at (3006,0039)[0]", job_id=12,
                               now=datetime(2026, 3, 14, 10, 15, 0, tzinfo=UTC))

    assert kept.parent == quarantine_dir / "job-12"
    assert kept.read_bytes() == raw
    reason = kept.with_name(kept.name.replace(".dcm", ".reason.txt")).read_text()
    assert "job: 12" in reason
    assert "reason: RTSTRUCT references an image UID that is not this job's" in reason
    assert "2026-03-14T10:15:00+00:00" in reason


def test_foreign_uid_is_quarantined_and_nothing_reaches_the_origin_folder(job, origin_folder,
                                                                          quarantine_dir):
    # given the server's RTSTRUCT has a contour on another patient's de-identified image
    rtstruct = job.rtstruct()
    foreign = str(deidentified_job(1).images[0].SOPInstanceUID)
    rtstruct.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0] \
        .ReferencedSOPInstanceUID = foreign
    raw = to_bytes(rtstruct)
    before = names(origin_folder)

    # when the import step handles it
    with pytest.raises(RtstructRejected) as rejected:
        deliver(job, raw, origin_folder, quarantine_dir)

    # then the origin folder is untouched, and the file is in quarantine with its reason
    assert names(origin_folder) == before
    kept = rejected.value.quarantined_path
    assert kept is not None and kept.read_bytes() == raw
    reason = (kept.parent / kept.name.replace(".dcm", ".reason.txt")).read_text()
    assert foreign in reason and "(3006,0039)[0].(3006,0040)[0].(3006,0016)[0]" in reason
    for phi in job.patient.phi_strings():
        assert phi not in reason


def test_unreadable_download_is_quarantined(job, origin_folder, quarantine_dir):
    before = names(origin_folder)

    with pytest.raises(RtstructRejected, match="not a readable DICOM file") as rejected:
        deliver(job, b"<html>502 Bad Gateway</html>", origin_folder, quarantine_dir)

    assert names(origin_folder) == before
    assert rejected.value.quarantined_path.read_bytes() == b"<html>502 Bad Gateway</html>"


def test_import_step_delivers_a_reidentified_rtstruct(job, origin_folder, quarantine_dir):
    path = deliver(job, to_bytes(job.rtstruct()), origin_folder, quarantine_dir)

    stored = pydicom.dcmread(path)
    assert stored.PatientID == job.patient.patient_id
    assert referenced_uids(stored)["images"] == job.original_uids("SOPInstanceUID")
    assert stored.SOPInstanceUID.startswith("2.25.")
    assert not quarantine_dir.exists()


def test_import_step_run_twice_for_the_same_download_leaves_one_file(job, origin_folder,
                                                                     quarantine_dir):
    raw = to_bytes(job.rtstruct())

    first = deliver(job, raw, origin_folder, quarantine_dir)
    second = deliver(job, raw, origin_folder, quarantine_dir)

    assert first == second
    assert len([n for n in os.listdir(origin_folder) if n.startswith("RS.")]) == 1
