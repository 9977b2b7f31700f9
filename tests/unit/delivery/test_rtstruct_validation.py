"""Validation of the RTSTRUCT the DRAW server returns, before anything else happens to it."""

from __future__ import annotations

import pytest
from dicom_ops.delivery.validation import (
    ExpectedUids,
    RtstructRejected,
    validate_rtstruct,
)
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from tests.support.deidentified_job import deidentified_job


@pytest.fixture(scope="module")
def job():
    return deidentified_job(0)


@pytest.fixture(scope="module")
def other_job():
    return deidentified_job(1)


@pytest.fixture
def expected(job) -> ExpectedUids:
    return ExpectedUids.from_uid_map(job.uid_map)


def first_contour_image(rtstruct: Dataset) -> Dataset:
    return rtstruct.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0]


def test_rtstruct_on_the_jobs_images_is_accepted(job, expected):
    # given the RTSTRUCT the server made from this job's de-identified images
    rtstruct = job.rtstruct()

    # when / then: no objection
    validate_rtstruct(rtstruct, expected)


def test_ct_image_returned_instead_of_an_rtstruct_is_rejected(job, expected):
    # given the server sent back one of the CT images
    image = job.images[0]

    # when / then
    with pytest.raises(RtstructRejected, match=r"not an RT Structure Set: SOP Class UID "
                                               r"\(0008,0016\) is CT Image Storage"):
        validate_rtstruct(image, expected)


def test_rtstruct_with_wrong_modality_is_rejected(job, expected):
    rtstruct = job.rtstruct()
    rtstruct.Modality = "CT"

    with pytest.raises(RtstructRejected, match=r"Modality \(0008,0060\) is CT, not RTSTRUCT"):
        validate_rtstruct(rtstruct, expected)


def test_rtstruct_whose_file_meta_claims_another_class_is_rejected(job, expected):
    rtstruct = job.rtstruct()
    rtstruct.file_meta.MediaStorageSOPClassUID = CTImageStorage

    with pytest.raises(RtstructRejected, match=r"\(0002,0002\)"):
        validate_rtstruct(rtstruct, expected)


def test_contour_on_another_patients_image_is_rejected_naming_the_tag_path(job, other_job,
                                                                          expected):
    # given one contour points at an image of another patient's de-identified series
    rtstruct = job.rtstruct()
    foreign = str(other_job.images[2].SOPInstanceUID)
    first_contour_image(rtstruct).ReferencedSOPInstanceUID = foreign

    # when
    with pytest.raises(RtstructRejected) as rejected:
        validate_rtstruct(rtstruct, expected)

    # then the reason says where, and shows only the de-identified UID
    assert rejected.value.reason == (
        "RTSTRUCT references an image UID that is not this job's at "
        "(3006,0039)[0].(3006,0040)[0].(3006,0016)[0].(0008,1155) ReferencedSOPInstanceUID: "
        f"{foreign}")
    assert job.patient.patient_id not in rejected.value.reason


def test_reference_of_the_wrong_kind_is_rejected(job, expected):
    # given the study reference holds this job's own series UID (right job, wrong kind)
    rtstruct = job.rtstruct()
    study_item = rtstruct.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    study_item.ReferencedSOPInstanceUID = str(job.images[0].SeriesInstanceUID)

    with pytest.raises(RtstructRejected, match=r"a study UID that is not this job's at "
                                               r"\(3006,0010\)\[0\]\.\(3006,0012\)\[0\]"):
        validate_rtstruct(rtstruct, expected)


def test_roi_on_another_frame_of_reference_is_rejected(job, other_job, expected):
    rtstruct = job.rtstruct()
    rtstruct.StructureSetROISequence[1].ReferencedFrameOfReferenceUID = str(
        other_job.images[0].FrameOfReferenceUID)

    with pytest.raises(RtstructRejected, match=r"\(3006,0020\)\[1\]\.\(3006,0024\)"):
        validate_rtstruct(rtstruct, expected)


def test_rtstruct_in_another_study_is_rejected(job, other_job, expected):
    rtstruct = job.rtstruct()
    rtstruct.StudyInstanceUID = str(other_job.images[0].StudyInstanceUID)

    with pytest.raises(RtstructRejected, match=r"study UID that is not this job's at \(0020,000D\)"):
        validate_rtstruct(rtstruct, expected)


def test_unknown_uid_in_any_other_nested_element_is_rejected(job, expected):
    # given an extra reference, deep in an ROI observation, to something not in the map
    rtstruct = job.rtstruct()
    reference = Dataset()
    reference.ReferencedSOPClassUID = CTImageStorage  # a class UID: not looked up
    reference.ReferencedSOPInstanceUID = "2.25.1234567890"
    rtstruct.RTROIObservationsSequence[0].ReferencedImageSequence = Sequence([reference])

    with pytest.raises(RtstructRejected, match=r"not in this job's map at \(3006,0080\)\[0\]\."
                                               r"\(0008,1140\)\[0\]\.\(0008,1155\) "
                                               r"ReferencedSOPInstanceUID: 2\.25\.1234567890"):
        validate_rtstruct(rtstruct, expected)


def test_rtstruct_without_any_roi_is_rejected(job, expected):
    rtstruct = job.rtstruct()
    rtstruct.StructureSetROISequence = Sequence([])

    with pytest.raises(RtstructRejected, match="has no ROI"):
        validate_rtstruct(rtstruct, expected)


def test_rtstruct_without_referenced_frame_of_reference_is_rejected(job, expected):
    rtstruct = job.rtstruct()
    del rtstruct.ReferencedFrameOfReferenceSequence

    with pytest.raises(RtstructRejected, match=r"no Referenced Frame of Reference Sequence"):
        validate_rtstruct(rtstruct, expected)


def test_uid_map_with_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown kind 'patient'"):
        ExpectedUids.from_uid_map({"2.25.1": ("1.2.3", "patient")})
