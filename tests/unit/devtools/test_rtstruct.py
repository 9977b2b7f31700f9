"""The RTSTRUCT builder and its readers: a valid structure set that points where it should."""

from __future__ import annotations

import subprocess
from datetime import datetime

import numpy as np
import pydicom
import pytest
from dicom_ops.devtools.rtstruct_builder import (
    RoiContours,
    build_rtstruct,
    read_rois,
    referenced_uids,
)
from pydicom.uid import CTImageStorage, RTStructureSetStorage

from tests.conftest import require_tool
from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient

RTSTRUCT_UID = "1.2.826.0.1.3680043.8.498.999"


@pytest.fixture(scope="module")
def images():
    return make_ct_series(synthetic_patient(3), SeriesGeometry(slices=4, rows=16, columns=16))


def _square(ds, half: float = 20.0) -> np.ndarray:
    z = float(ds.ImagePositionPatient[2])
    return np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])


def _rois(images) -> list[RoiContours]:
    return [
        RoiContours(1, "External", {ds.SOPInstanceUID: [_square(ds)] for ds in images}),
        RoiContours(2, "Lung_L", {images[1].SOPInstanceUID: [_square(images[1], 5.0),
                                                              _square(images[1], 2.0)]}),
        RoiContours(3, "Brainstem", {}),
    ]


def _write_and_read(ds, tmp_path):
    path = tmp_path / "rtstruct.dcm"
    ds.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path), path


def test_built_rtstruct_reads_back_as_an_rt_structure_set(images, tmp_path):
    built = build_rtstruct(images, _rois(images), sop_instance_uid=RTSTRUCT_UID,
                           now=datetime(2026, 3, 15, 9, 30, 0))
    rtstruct, _ = _write_and_read(built, tmp_path)
    assert rtstruct.SOPClassUID == RTStructureSetStorage
    assert rtstruct.file_meta.MediaStorageSOPClassUID == RTStructureSetStorage
    assert rtstruct.SOPInstanceUID == rtstruct.file_meta.MediaStorageSOPInstanceUID == RTSTRUCT_UID
    assert rtstruct.Modality == "RTSTRUCT"
    assert rtstruct.StructureSetDate == "20260315" and rtstruct.StructureSetTime == "093000"
    assert rtstruct.SeriesInstanceUID not in {ds.SeriesInstanceUID for ds in images}


def test_rtstruct_belongs_to_the_patient_and_study_of_its_images(images):
    rtstruct = build_rtstruct(images, _rois(images), sop_instance_uid=RTSTRUCT_UID)
    ct = images[0]
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "StudyDate", "AccessionNumber", "StudyID"):
        assert rtstruct[keyword].value == ct[keyword].value, keyword


def test_rtstruct_references_the_frame_study_series_and_every_image(images):
    rtstruct = build_rtstruct(images, _rois(images), sop_instance_uid=RTSTRUCT_UID)
    found = referenced_uids(rtstruct)
    assert found["frame_of_reference"] == {images[0].FrameOfReferenceUID}
    assert found["study"] == {images[0].StudyInstanceUID}
    assert found["series"] == {images[0].SeriesInstanceUID}
    assert found["images"] == {ds.SOPInstanceUID for ds in images}
    assert found["contour_images"] == {ds.SOPInstanceUID for ds in images}


def test_each_contour_is_closed_planar_and_references_its_own_ct_image(images):
    rtstruct = build_rtstruct(images, _rois(images), sop_instance_uid=RTSTRUCT_UID)
    by_uid = {ds.SOPInstanceUID: ds for ds in images}
    external = rtstruct.ROIContourSequence[0]
    assert len(external.ContourSequence) == len(images)
    for contour in external.ContourSequence:
        [image] = contour.ContourImageSequence
        assert image.ReferencedSOPClassUID == CTImageStorage
        assert contour.ContourGeometricType == "CLOSED_PLANAR"
        assert contour.NumberOfContourPoints * 3 == len(contour.ContourData)
        z = float(by_uid[image.ReferencedSOPInstanceUID].ImagePositionPatient[2])
        assert all(float(v) == pytest.approx(z) for v in contour.ContourData[2::3])


def test_an_roi_without_contours_is_present_and_named(images):
    rtstruct = build_rtstruct(images, _rois(images), sop_instance_uid=RTSTRUCT_UID)
    names = {item.ROINumber: item.ROIName for item in rtstruct.StructureSetROISequence}
    assert names == {1: "External", 2: "Lung_L", 3: "Brainstem"}
    empty = next(i for i in rtstruct.ROIContourSequence if i.ReferencedROINumber == 3)
    assert "ContourSequence" not in empty
    observations = {o.ReferencedROINumber: o.RTROIInterpretedType
                    for o in rtstruct.RTROIObservationsSequence}
    assert observations == {1: "EXTERNAL", 2: "ORGAN", 3: "ORGAN"}


def test_read_rois_gives_back_the_contours_that_went_in(images, tmp_path):
    rois = _rois(images)
    rtstruct, _ = _write_and_read(
        build_rtstruct(images, rois, sop_instance_uid=RTSTRUCT_UID), tmp_path)
    read = read_rois(rtstruct)
    assert [(r.number, r.name) for r in read] == [(r.number, r.name) for r in rois]
    for original, back in zip(rois, read, strict=True):
        assert set(back.contours) == set(original.contours)
        for uid, polygons in original.contours.items():
            for expected, actual in zip(polygons, back.contours[uid], strict=True):
                np.testing.assert_allclose(actual, expected, atol=1e-3)


def test_images_of_two_series_in_one_frame_are_listed_per_series(images):
    other = make_ct_series(synthetic_patient(3), SeriesGeometry(slices=2, rows=16, columns=16),
                           series_number=2)
    rtstruct = build_rtstruct([*images, *other], _rois(images), sop_instance_uid=RTSTRUCT_UID)
    series = rtstruct.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0] \
        .RTReferencedSeriesSequence
    assert [len(s.ContourImageSequence) for s in series] == [len(images), len(other)]
    assert referenced_uids(rtstruct)["series"] == {images[0].SeriesInstanceUID,
                                                   other[0].SeriesInstanceUID}


def test_rebuilding_with_the_same_sop_instance_uid_gives_the_same_series_uid(images):
    first = build_rtstruct(images, _rois(images), sop_instance_uid=RTSTRUCT_UID)
    second = build_rtstruct(images, _rois(images), sop_instance_uid=RTSTRUCT_UID)
    assert first.SeriesInstanceUID == second.SeriesInstanceUID


def test_a_contour_on_an_image_not_given_is_refused_without_naming_the_uid(images):
    stray = RoiContours(1, "Body", {"1.2.3.4.5.6.7": [_square(images[0])]})
    with pytest.raises(ValueError, match="not among the images") as raised:
        build_rtstruct(images, [stray], sop_instance_uid=RTSTRUCT_UID)
    assert "1.2.3.4.5.6.7" not in str(raised.value)


def test_images_from_two_frames_of_reference_are_refused(images):
    other = make_ct_series(synthetic_patient(4), SeriesGeometry(slices=1, rows=16, columns=16),
                           study_uid=images[0].StudyInstanceUID)
    with pytest.raises(ValueError, match="FrameOfReferenceUID"):
        build_rtstruct([*images, *other], [], sop_instance_uid=RTSTRUCT_UID)


@pytest.mark.parametrize(
    ("make_rois", "message"),
    [
        (lambda ims: [RoiContours(1, "A", {}), RoiContours(1, "B", {})], "unique"),
        (lambda ims: [RoiContours(1, " ", {})], "no name"),
        (lambda ims: [RoiContours(1, "A", {ims[0].SOPInstanceUID: [np.zeros((2, 3))]})],
         "N >= 3"),
        (lambda ims: [RoiContours(1, "A", {ims[0].SOPInstanceUID: [np.full((3, 3), np.nan)]})],
         "non-finite"),
    ],
)
def test_rois_that_would_make_a_wrong_file_are_refused(images, make_rois, message):
    with pytest.raises(ValueError, match=message):
        build_rtstruct(images, make_rois(images), sop_instance_uid=RTSTRUCT_UID)


def test_dcmtk_reads_the_rtstruct_without_complaint(images, tmp_path):
    dcmdump = require_tool("dcmdump")
    _, path = _write_and_read(
        build_rtstruct(images, _rois(images), sop_instance_uid=RTSTRUCT_UID), tmp_path)
    result = subprocess.run([dcmdump, "-q", "+L", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "E:" not in result.stderr and "W:" not in result.stderr
    assert "RTStructureSetStorage" in result.stdout


def test_built_rtstruct_has_the_images_frame_of_reference_module(images, tmp_path):
    marked = [ds.copy() for ds in images]
    for ds in marked:
        ds.PositionReferenceIndicator = "SN"

    rtstruct, _ = _write_and_read(
        build_rtstruct(marked, _rois(marked), sop_instance_uid=RTSTRUCT_UID), tmp_path)

    assert rtstruct.FrameOfReferenceUID == images[0].FrameOfReferenceUID
    assert rtstruct.PositionReferenceIndicator == "SN"


def test_a_bare_rtstruct_leaves_out_the_frame_of_reference_module_as_some_servers_do(
        images, tmp_path):
    rtstruct, _ = _write_and_read(
        build_rtstruct(images, _rois(images), sop_instance_uid=RTSTRUCT_UID,
                       frame_of_reference_module=False), tmp_path)

    assert "FrameOfReferenceUID" not in rtstruct
    assert "PositionReferenceIndicator" not in rtstruct
    assert referenced_uids(rtstruct)["frame_of_reference"] == {images[0].FrameOfReferenceUID}
