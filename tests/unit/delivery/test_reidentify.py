"""Re-identification: the RTSTRUCT comes back on the original patient, study, series and
images, with its contours untouched; anything that does not belong to the job is refused."""

from __future__ import annotations

import copy
import io
import re

import pydicom
import pytest
from dicom_ops.delivery.reidentify import reidentify
from dicom_ops.delivery.validation import RtstructRejected
from dicom_ops.devtools.rtstruct_builder import referenced_uids
from dicom_ops.uids import new_uid
from pydicom.dataset import Dataset
from pydicom.uid import UID

from tests.support.deidentified_job import DeidentifiedJob, deidentified_job, to_bytes

NEW_SOP = "2.25.111111111111111111111111111111111"
NEW_SERIES = "2.25.222222222222222222222222222222222"


def reidentified(job: DeidentifiedJob, rtstruct: Dataset | None = None, **changes) -> Dataset:
    arguments = dict(pseudonym=job.pseudonym, new_sop_instance_uid=NEW_SOP,
                     new_series_instance_uid=NEW_SERIES) | changes
    subject = arguments.pop("subject", job.subject)
    uid_map = arguments.pop("uid_map", job.uid_map)
    return reidentify(rtstruct if rtstruct is not None else as_received(job), uid_map, subject,
                      **arguments)


def as_received(job: DeidentifiedJob, *, implicit_vr: bool = False) -> Dataset:
    """The RTSTRUCT as read from the file the server sent."""
    return pydicom.dcmread(io.BytesIO(to_bytes(job.rtstruct(), implicit_vr=implicit_vr)))


def written(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def contour_data_values(raw: bytes) -> list[bytes]:
    """The encoded value of every Contour Data element, as bytes in the file."""
    found = []
    ds = pydicom.dcmread(io.BytesIO(raw))
    for roi_contour in ds.ROIContourSequence:
        for contour in roi_contour.ContourSequence:
            found.append("\\".join(str(v) for v in contour.ContourData).encode())
    for value in found:
        assert value in raw
    return found


@pytest.fixture(scope="module")
def job() -> DeidentifiedJob:
    return deidentified_job(0)


def test_reidentified_rtstruct_references_the_original_patient_study_series_frame_and_images(
        job):
    # when the server's RTSTRUCT is re-identified with the job's maps
    rtstruct = reidentified(job)

    # then it names the original patient and study...
    original = job.originals[0]
    assert rtstruct.PatientName == original.PatientName
    assert rtstruct.PatientID == original.PatientID
    assert rtstruct.PatientBirthDate == original.PatientBirthDate
    assert rtstruct.AccessionNumber == original.AccessionNumber
    assert rtstruct.StudyDate == original.StudyDate
    assert rtstruct.StudyInstanceUID == original.StudyInstanceUID
    # ...and points at the original series, frame of reference and every original image
    references = referenced_uids(rtstruct)
    assert references["study"] == job.original_uids("StudyInstanceUID")
    assert references["series"] == job.original_uids("SeriesInstanceUID")
    assert references["frame_of_reference"] == job.original_uids("FrameOfReferenceUID")
    assert references["contour_images"] == job.original_uids("SOPInstanceUID")
    assert references["images"] == job.original_uids("SOPInstanceUID")


def test_reidentified_rtstruct_is_a_new_instance_in_a_new_series(job):
    rtstruct = reidentified(job)

    assert rtstruct.SOPInstanceUID == NEW_SOP
    assert rtstruct.file_meta.MediaStorageSOPInstanceUID == NEW_SOP
    assert rtstruct.SeriesInstanceUID == NEW_SERIES
    assert NEW_SERIES not in job.original_uids("SeriesInstanceUID")


def test_contour_data_is_byte_identical(job):
    # given the server's file, and the contour data in it as bytes
    received = to_bytes(job.rtstruct())

    # when it is re-identified and written
    output = written(reidentified(job, pydicom.dcmread(io.BytesIO(received))))

    # then every contour's encoded points are unchanged
    assert contour_data_values(output) == contour_data_values(received)


def test_contour_data_is_byte_identical_from_an_implicit_vr_file(job):
    received = to_bytes(job.rtstruct(), implicit_vr=True)

    output = written(reidentified(job, pydicom.dcmread(io.BytesIO(received))))

    assert contour_data_values(output) == contour_data_values(received)


def test_no_deidentified_value_is_left_in_the_file(job):
    output = written(reidentified(job))

    assert job.pseudonym.encode() not in output
    for deid in job.uid_map:
        assert deid.encode() not in output


def test_identity_attributes_the_subject_lacks_are_emptied_not_left_pseudonymous(job):
    # given subject data without the accession number, and a server copy with extras
    subject = {k: v for k, v in job.subject.items() if k not in ("AccessionNumber",
                                                                 "IssuerOfPatientID")}
    rtstruct = as_received(job)
    rtstruct.AccessionNumber = "DEID-ACC-1"
    rtstruct.OtherPatientIDs = job.pseudonym
    rtstruct.IssuerOfPatientID = "DEIDENTIFIER"

    output = reidentified(job, rtstruct, subject=subject)

    assert output.AccessionNumber == ""
    assert "OtherPatientIDs" not in output
    assert "IssuerOfPatientID" not in output


def test_deidentification_markers_and_private_elements_are_removed(job):
    rtstruct = as_received(job)
    rtstruct.PatientIdentityRemoved = "YES"
    rtstruct.DeidentificationMethod = "DRAW basic profile"
    block = rtstruct.private_block(0x0045, "DRAW SERVER", create=True)
    block.add_new(0x01, "UI", "2.25.99")  # a private reference nobody can check
    nested = rtstruct.ROIContourSequence[0].private_block(0x0047, "DRAW SERVER", create=True)
    nested.add_new(0x02, "LO", "model 12")

    output = reidentified(job, rtstruct)

    assert "PatientIdentityRemoved" not in output
    assert "DeidentificationMethod" not in output
    assert not [e for e in output.iterall() if e.tag.is_private]


def test_rtstruct_with_another_pseudonym_is_rejected(job):
    # given UIDs that are all this job's, but the PatientID of another job's pseudonym
    rtstruct = as_received(job)
    rtstruct.PatientID = deidentified_job(1).pseudonym

    with pytest.raises(RtstructRejected, match=r"PatientID \(0010,0020\) of the RTSTRUCT is not "
                                               "this job's pseudonym"):
        reidentified(job, rtstruct)


def test_rtstruct_with_a_foreign_uid_is_rejected_without_patient_values(job):
    # given a contour on an image of another patient's de-identified series
    other = deidentified_job(1)
    rtstruct = as_received(job)
    foreign = str(other.images[1].SOPInstanceUID)
    rtstruct.ROIContourSequence[1].ContourSequence[2].ContourImageSequence[0] \
        .ReferencedSOPInstanceUID = foreign

    with pytest.raises(RtstructRejected) as rejected:
        reidentified(job, rtstruct)

    assert "(3006,0039)[1].(3006,0040)[2].(3006,0016)[0].(0008,1155)" in rejected.value.reason
    assert foreign in rejected.value.reason
    for phi in job.patient.phi_strings() + [job.originals[0].StudyInstanceUID]:
        assert phi not in rejected.value.reason


def test_input_dataset_is_left_as_received(job):
    rtstruct = as_received(job)
    before = written(copy.deepcopy(rtstruct))

    reidentified(job, rtstruct)

    assert written(rtstruct) == before


def test_same_inputs_give_the_same_bytes(job):
    assert written(reidentified(job)) == written(reidentified(job))


def test_name_outside_ascii_is_restored_readably(job):
    subject = job.subject | {"PatientName": "MÜLLER^JÜRGEN"}

    output = pydicom.dcmread(io.BytesIO(written(reidentified(job, subject=subject))))

    assert output.PatientName == "MÜLLER^JÜRGEN"
    assert output.SpecificCharacterSet == "ISO_IR 192"
    assert [roi.ROIName for roi in output.StructureSetROISequence] == ["BODY", "Spine"]


def test_subject_without_patient_id_is_refused(job):
    subject = {k: v for k, v in job.subject.items() if k != "PatientID"}

    with pytest.raises(ValueError, match="lacks PatientID"):
        reidentified(job, subject=subject)


def test_subject_cannot_overwrite_uids(job):
    with pytest.raises(ValueError, match="StudyInstanceUID cannot be restored"):
        reidentified(job, subject=job.subject | {"StudyInstanceUID": "1.2.3"})


def test_new_uid_must_really_be_new(job):
    original_image = str(job.originals[0].SOPInstanceUID)

    with pytest.raises(ValueError, match="is one of the job's UIDs"):
        reidentified(job, new_sop_instance_uid=original_image)


def test_new_uid_under_the_uuid_root_is_uuid_derived_and_unique():
    uids = {new_uid("2.25") for _ in range(50)}

    assert len(uids) == 50
    for uid in uids:
        assert re.fullmatch(r"2\.25\.[1-9]\d*", uid) and UID(uid).is_valid


def test_new_uid_under_an_organisation_root_fits_64_characters():
    root = "1.2.826.0.1.3680043.10.123456"

    uid = new_uid(root)

    assert uid.startswith(root + ".") and len(uid) <= 64 and UID(uid).is_valid


def test_new_uid_from_the_same_seed_is_the_same():
    assert new_uid("2.25", seed="job-7:abc") == new_uid("2.25", seed="job-7:abc")
    assert new_uid("2.25", seed="job-7:abc") != new_uid("2.25", seed="job-8:abc")
    assert new_uid("1.2.3", seed="job-7:abc") == new_uid("1.2.3", seed="job-7:abc")


@pytest.mark.parametrize("patients", [20])
def test_each_of_many_patients_gets_contours_only_on_their_own_images(patients):
    # given twenty patients' jobs, each with the RTSTRUCT the server made for it
    jobs = [deidentified_job(i) for i in range(patients)]
    received = {job.patient.index: as_received(job) for job in jobs}

    for job in jobs:
        # when each RTSTRUCT is re-identified with its own job's maps
        output = reidentified(job, received[job.patient.index])

        # then it names its own patient and references only its own images
        assert output.PatientID == job.patient.patient_id
        assert referenced_uids(output)["images"] == job.original_uids("SOPInstanceUID")

    for job, neighbour in zip(jobs, jobs[1:] + jobs[:1], strict=True):
        # and patient A's RTSTRUCT with patient B's maps is refused
        with pytest.raises(RtstructRejected, match="not this job's"):
            reidentify(received[job.patient.index], neighbour.uid_map, neighbour.subject,
                       pseudonym=neighbour.pseudonym, new_sop_instance_uid=NEW_SOP,
                       new_series_instance_uid=NEW_SERIES)


def test_reidentify_checks_what_validation_checks(job):
    # given the server sent back a CT image of this very job, not an RTSTRUCT
    image = copy.deepcopy(job.images[0])

    with pytest.raises(RtstructRejected, match="not an RT Structure Set"):
        reidentified(job, image)
