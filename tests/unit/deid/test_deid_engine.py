"""De-identifying the dense-PHI corpus: nothing identifying leaves, everything needed stays,
UIDs are consistent, the output is deterministic and readable, pixels are untouched."""

from pathlib import Path

import pydicom
import pytest
from dicom_ops.config import REPO_ROOT
from dicom_ops.deid.dates import shift_da
from dicom_ops.deid.engine import (
    BurnedInAnnotationError,
    DeidError,
    deidentify_file,
    deidentify_series,
)
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.recipe import load_recipe
from dicom_ops.deid.uids import is_instance_uid

from tests.factories import (
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    synthetic_uid,
    with_burned_in_annotation,
    write_non_dicom,
    write_series,
)

RECIPE = load_recipe(REPO_ROOT / "include" / "deid" / "deid.dicom")
KEYS = DeidKeys.from_secret("engine-test-secret-0123456789")
SMALL = SeriesGeometry(slices=4, rows=16, columns=16, pixel_spacing=30.0)
CLASS_LIKE = {"SOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID",
              "ImplementationClassUID", "ReferencedSOPClassUID"}


def write_patient_series(folder: Path, index: int = 0, geometry=SMALL, **options) -> list[Path]:
    return write_series(make_ct_series(synthetic_patient(index), geometry, **options), folder)


def all_uids(ds: pydicom.Dataset) -> dict[str, str]:
    """keyword path -> UID value, for every UI element (file meta included)."""
    found = {}
    for element in [*ds.file_meta, *ds.iterall()]:
        if element.VR == "UI" and element.value:
            found[element.keyword] = str(element.value)
    return found


@pytest.mark.parametrize("index", [0, 7, 16])
def test_no_phi_string_is_left_anywhere_in_the_output(tmp_path, index):
    files = write_patient_series(tmp_path / "in", index)
    result = deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    originals = {str(e.value) for f in files for e in pydicom.dcmread(f).iterall()
                 if e.VR == "UI" and is_instance_uid(int(e.tag), str(e.value))}
    assert len(originals) > len(files)
    for path in result.files:
        text = path.read_bytes().decode("latin-1").casefold()
        for phi in synthetic_patient(index).phi_strings():
            assert phi.casefold() not in text, phi
        for uid in originals:
            assert uid not in text and uid not in path.name


def test_everything_segmentation_needs_stays_as_it_was(tmp_path):
    files = write_patient_series(tmp_path / "in")
    result = deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    for source, target in zip(files, result.files, strict=True):
        before, after = pydicom.dcmread(source), pydicom.dcmread(target)
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                        "SliceThickness", "Rows", "Columns", "BitsAllocated", "BitsStored",
                        "PixelRepresentation", "RescaleIntercept", "RescaleSlope", "WindowCenter",
                        "Modality", "ImageType", "BodyPartExamined", "KVP", "InstanceNumber",
                        "PatientPosition", "SOPClassUID"):
            assert after[keyword].value == before[keyword].value, keyword
        assert after.PixelData == before.PixelData
        assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
        assert after.file_meta.MediaStorageSOPClassUID == before.file_meta.MediaStorageSOPClassUID
        assert (after.pixel_array == before.pixel_array).all()


def test_uids_are_consistent_across_the_series_and_in_the_file_meta(tmp_path):
    files = write_patient_series(tmp_path / "in", geometry=SeriesGeometry(slices=6, rows=8,
                                                                          columns=8))
    result = deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    outputs = [pydicom.dcmread(f) for f in result.files]
    assert len({ds.StudyInstanceUID for ds in outputs}) == 1
    assert len({ds.SeriesInstanceUID for ds in outputs}) == 1
    assert len({ds.FrameOfReferenceUID for ds in outputs}) == 1
    assert len({ds.SOPInstanceUID for ds in outputs}) == 6
    for path, ds in zip(result.files, outputs, strict=True):
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert path.name == f"{ds.SOPInstanceUID}.dcm"
        for keyword, uid in all_uids(ds).items():
            if keyword not in CLASS_LIKE:
                assert uid.startswith("2.25.") and uid in result.uid_map, keyword


def test_the_uid_map_leads_back_to_every_original(tmp_path):
    files = write_patient_series(tmp_path / "in")
    result = deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    for source, target in zip(files, result.files, strict=True):
        before, after = pydicom.dcmread(source), pydicom.dcmread(target)
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                        "FrameOfReferenceUID"):
            original, kind = result.uid_map[after[keyword].value]
            assert original == before[keyword].value
            assert kind == {"StudyInstanceUID": "study", "SeriesInstanceUID": "series",
                            "SOPInstanceUID": "sop", "FrameOfReferenceUID":
                            "frame_of_reference"}[keyword]


def test_the_same_input_gives_byte_identical_output(tmp_path):
    files = write_patient_series(tmp_path / "in")
    first = deidentify_series(files, tmp_path / "one", RECIPE, KEYS)
    second = deidentify_series(files, tmp_path / "two", load_recipe(RECIPE.path),
                               DeidKeys.from_secret("engine-test-secret-0123456789"))
    assert [p.name for p in first.files] == [p.name for p in second.files]
    assert [p.read_bytes() for p in first.files] == [p.read_bytes() for p in second.files]
    assert first.uid_map == second.uid_map and first.pseudonym == second.pseudonym


def test_another_installation_secret_gives_other_uids_and_pseudonym(tmp_path):
    files = write_patient_series(tmp_path / "in")
    ours = deidentify_series(files, tmp_path / "ours", RECIPE, KEYS)
    theirs = deidentify_series(files, tmp_path / "theirs", RECIPE, DeidKeys.throwaway())
    assert not set(ours.uid_map) & set(theirs.uid_map)
    assert ours.pseudonym != theirs.pseudonym


def test_the_patient_becomes_a_pseudonym_and_dates_move_by_the_patients_offset(tmp_path):
    files = write_patient_series(tmp_path / "in", 3)
    result = deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    ds = pydicom.dcmread(result.files[0])
    assert ds.PatientName == ds.PatientID == result.pseudonym
    assert ds.PatientBirthDate == "" and ds.AccessionNumber == "" and ds.StudyID == ""
    assert ds.StudyDate == shift_da("20260314", result.date_offset_days) != "20260314"
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "OtherPatientIDsSequence" not in ds and "RequestAttributesSequence" not in ds
    assert not [e for e in ds.iterall() if e.tag.is_private]


def test_the_result_holds_what_re_identification_and_the_egress_check_need(tmp_path):
    patient = synthetic_patient(5)
    files = write_patient_series(tmp_path / "in", 5)
    result = deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    assert result.subject["PatientName"] == patient.dicom_name
    assert result.subject["PatientID"] == patient.patient_id
    assert result.subject["PatientBirthDate"] == patient.birth_date
    assert result.subject["AccessionNumber"] == patient.accession
    assert result.subject["OtherPatientIDs"] == patient.other_ids[0]
    assert result.subject["StudyDate"] == "20260314"
    found = result.identifiers
    assert {patient.family_name, patient.given_name, patient.middle_name} <= found.name_parts
    assert found.patient_ids == {patient.patient_id}
    assert patient.other_ids[0] in found.other_ids
    assert found.accession_numbers == {patient.accession}
    assert found.birth_dates == {patient.birth_date}
    assert patient.study_uid in found.uids
    assert synthetic_uid("ref-study", 5) in found.uids  # only in a removed nested sequence
    assert patient.family_name not in repr(found) and patient.family_name not in repr(result)


def test_a_burned_in_annotation_refuses_the_series_and_writes_nothing(tmp_path):
    series = make_ct_series(synthetic_patient(0), SMALL)
    with_burned_in_annotation(series[2])
    files = write_series(series, tmp_path / "in")
    with pytest.raises(BurnedInAnnotationError, match="burned-in annotation: image 3 of 4"):
        deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_series_mixing_patients_is_refused(tmp_path):
    files = write_patient_series(tmp_path / "in" / "a", 1) + write_patient_series(
        tmp_path / "in" / "b", 2)
    with pytest.raises(DeidError, match="mixes 2 patients"):
        deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_file_that_is_not_dicom_is_named_by_position_not_by_name(tmp_path):
    files = write_patient_series(tmp_path / "in")
    files[1] = write_non_dicom(tmp_path / "in" / "DOE_JANE.dcm")
    with pytest.raises(DeidError) as error:
        deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    assert "image 2 of 4: not a DICOM Part 10 file" in str(error.value)
    assert "DOE" not in str(error.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_an_output_folder_that_is_not_empty_is_refused(tmp_path):
    files = write_patient_series(tmp_path / "in")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.dcm").write_bytes(b"")
    with pytest.raises(DeidError, match="not empty"):
        deidentify_series(files, tmp_path / "out", RECIPE, KEYS)


def test_helper_processes_write_exactly_what_one_process_writes(tmp_path):
    geometry = SeriesGeometry(slices=40, rows=8, columns=8)
    files = write_patient_series(tmp_path / "in", geometry=geometry)
    alone = deidentify_series(files, tmp_path / "alone", RECIPE, KEYS, workers=1)
    together = deidentify_series(files, tmp_path / "together", RECIPE, KEYS, workers=2)
    assert [p.read_bytes() for p in alone.files] == [p.read_bytes() for p in together.files]
    assert alone.uid_map == together.uid_map
    assert alone.identifiers == together.identifiers
    assert alone.actions == together.actions


def test_a_recipe_without_remove_all_maps_uids_at_every_nesting_level(tmp_path):
    recipe_path = tmp_path / "uids-only.dicom"
    recipe_path.write_text("FORMAT dicom\n%header\nREPLACE select:VR:UI func:deid_uid\n")
    series = make_ct_series(synthetic_patient(0), SMALL)
    reference = pydicom.Dataset()
    reference.ReferencedSOPClassUID = series[1].SOPClassUID
    reference.ReferencedSOPInstanceUID = series[1].SOPInstanceUID
    series[0].ReferencedImageSequence = pydicom.Sequence([reference])
    files = write_series(series, tmp_path / "in")
    result = deidentify_series(files, tmp_path / "out", load_recipe(recipe_path), KEYS)
    first, second = (pydicom.dcmread(f) for f in result.files[:2])
    nested = first.ReferencedImageSequence[0]
    assert nested.ReferencedSOPInstanceUID == second.SOPInstanceUID
    assert nested.ReferencedSOPClassUID == series[1].SOPClassUID
    request = first.RequestAttributesSequence[0]
    assert request.StudyInstanceUID == first.StudyInstanceUID
    assert request.ReferencedStudySequence[0].ReferencedSOPInstanceUID.startswith("2.25.")
    assert first.PatientName == synthetic_patient(0).dicom_name  # this recipe keeps it


def test_one_file_can_be_de_identified_on_its_own(tmp_path):
    source = write_patient_series(tmp_path / "in")[0]
    (tmp_path / "out").mkdir()
    target = deidentify_file(source, tmp_path / "out", RECIPE, KEYS)
    assert pydicom.dcmread(target).PatientID.startswith("DRAW-")


def test_each_image_comes_out_as_if_it_were_de_identified_alone(tmp_path):
    # The engine remembers what it did for earlier images of a series; images that
    # differ unexpectedly (another window, an extra comment, a missing attribute) must
    # come out exactly as they would on their own.
    series = make_ct_series(synthetic_patient(8), SeriesGeometry(slices=7, rows=8, columns=8))
    series[2].WindowCenter = 300
    series[3].ImageComments = "contrast given"
    del series[4].KVP
    series[5].ConvolutionKernel = "B70f"
    files = write_series(series, tmp_path / "in")
    result = deidentify_series(files, tmp_path / "series", RECIPE, KEYS)
    for number, source in enumerate(files):
        alone = tmp_path / f"alone{number}"
        alone.mkdir()
        single = deidentify_file(source, alone, load_recipe(RECIPE.path), KEYS)
        assert single.read_bytes() == result.files[number].read_bytes(), number


def test_two_images_with_one_sop_instance_uid_are_refused(tmp_path):
    series = make_ct_series(synthetic_patient(9), SMALL)
    files = write_series(series, tmp_path / "in")
    copy = tmp_path / "in" / "copy.dcm"
    copy.write_bytes(files[0].read_bytes())
    with pytest.raises(DeidError, match="two images share a SOP Instance UID"):
        deidentify_series([*files, copy], tmp_path / "out", RECIPE, KEYS)
    assert list((tmp_path / "out").iterdir()) == []
