"""The synthetic corpus must look like a real planning CT and carry PHI everywhere."""

import numpy as np
import pydicom
import pytest

from tests.factories import (
    HU_AIR,
    HU_BODY,
    HU_BONE,
    HU_LUNG,
    SeriesGeometry,
    as_localizer,
    make_ct_series,
    synthetic_patient,
    with_hostile_uids,
    without_sop_instance_uid,
    write_non_dicom,
    write_series,
    write_truncated,
)


def _all_text(ds: pydicom.Dataset) -> str:
    parts = []
    for element in ds.iterall():
        if element.VR not in ("OB", "OW", "SQ"):
            parts.append(str(element.value))
    return "\n".join(parts)


def test_geometry_steps_along_z_with_one_frame_of_reference():
    series = make_ct_series(geometry=SeriesGeometry(slices=10, z_step=-2.5))
    zs = [float(ds.ImagePositionPatient[2]) for ds in series]
    assert np.allclose(np.diff(zs), -2.5)
    assert len({ds.FrameOfReferenceUID for ds in series}) == 1
    assert len({ds.SOPInstanceUID for ds in series}) == 10
    assert [ds.InstanceNumber for ds in series] == list(range(1, 11))


def test_phantom_has_air_body_lungs_and_bone(tmp_path):
    series = make_ct_series(geometry=SeriesGeometry(slices=9, rows=64, columns=64))
    write_series(series, tmp_path)
    middle = pydicom.dcmread(sorted(tmp_path.iterdir())[0])
    mid = [ds for ds in series if ds.InstanceNumber == 5][0]
    hu = mid.pixel_array.astype(int) + int(mid.RescaleIntercept)
    for value in (HU_AIR, HU_BODY, HU_LUNG, HU_BONE):
        assert (hu == value).any(), value
    assert middle.Rows == 64


def test_patients_are_distinct_and_deterministic():
    assert synthetic_patient(3) == synthetic_patient(3)
    ids = {synthetic_patient(i).patient_id for i in range(50)}
    names = {synthetic_patient(i).dicom_name for i in range(50)}
    assert len(ids) == 50 and len(names) == 50


def test_phi_is_planted_in_nested_sequences_private_tags_and_free_text():
    patient = synthetic_patient(7)
    ds = make_ct_series(patient, SeriesGeometry(slices=1))[0]
    assert patient.other_ids[0] == ds.OtherPatientIDsSequence[0].PatientID
    assert patient.accession == ds.RequestAttributesSequence[0].RequestedProcedureID
    assert patient.family_name in ds.PatientComments
    assert patient.patient_id in ds.ImageComments
    private = [e for e in ds if e.tag.is_private]
    assert any(patient.patient_id == str(e.value) for e in private)
    text = _all_text(ds)
    for phi in patient.phi_strings():
        assert phi in text, phi


def test_bad_input_generators(tmp_path):
    ds = make_ct_series(geometry=SeriesGeometry(slices=1))[0]
    truncated = write_truncated(ds, tmp_path / "cut.dcm")
    assert truncated.stat().st_size == 400
    assert "PixelData" not in pydicom.dcmread(truncated, force=True)
    non_dicom = write_non_dicom(tmp_path / "log.txt")
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(non_dicom)
    assert "SOPInstanceUID" not in without_sop_instance_uid(make_ct_series()[0])
    hostile = with_hostile_uids(make_ct_series()[0])
    assert ".." in hostile.StudyInstanceUID and "/" in hostile.SeriesInstanceUID
    assert "LOCALIZER" in as_localizer(make_ct_series()[0]).ImageType
