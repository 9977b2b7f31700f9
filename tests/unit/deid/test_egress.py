"""The PHI egress check: a planted identifier anywhere stops everything and is named by its
place and kind (never its value); coincidences that are not leaks do not stop anything."""

from pathlib import Path

import pydicom
import pytest
from dicom_ops.config import REPO_ROOT
from dicom_ops.deid.egress import EgressViolation, egress_check, find_identifiers
from dicom_ops.deid.engine import SeriesDeidResult, deidentify_series
from dicom_ops.deid.identifiers import Identifiers
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.recipe import load_recipe

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series

RECIPE = load_recipe(REPO_ROOT / "include" / "deid" / "deid.dicom")
KEYS = DeidKeys.from_secret("egress-test-secret-0123456789")
PATIENT = synthetic_patient(2)


def deidentified(tmp_path: Path) -> SeriesDeidResult:
    series = make_ct_series(PATIENT, SeriesGeometry(slices=3, rows=8, columns=8))
    return deidentify_series(write_series(series, tmp_path / "in"), tmp_path / "out", RECIPE,
                             KEYS)


def plant(path: Path, change) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


def test_a_clean_de_identified_series_passes(tmp_path):
    result = deidentified(tmp_path)
    egress_check(result.files, result.identifiers)


@pytest.mark.parametrize(("change", "finding"), [
    (lambda ds: ds.add_new(0x00400275, "SQ", [pydicom.Dataset()]) or setattr(
        ds.RequestAttributesSequence[0], "RequestedProcedureID", PATIENT.accession),
     "image 2 of 3: (0040,0275)[0].(0040,1001) RequestedProcedureID: accession number"),
    (lambda ds: setattr(ds, "ImageComments", f"scan of {PATIENT.family_name.lower()}, ok"),
     "image 2 of 3: (0020,4000) ImageComments: patient name part"),
    (lambda ds: setattr(ds, "OtherPatientNames", f"{PATIENT.family_name}^{PATIENT.given_name}"),
     "image 2 of 3: (0010,1001) OtherPatientNames: patient name part"),
    (lambda ds: ds.private_block(0x0029, "SNEAKY", create=True).add_new(
        0x01, "LO", f"ID={PATIENT.patient_id}"),
     "image 2 of 3: (0029,1001) private tag: patient ID"),
    (lambda ds: setattr(ds, "ContentDate", PATIENT.birth_date),
     "image 2 of 3: (0008,0023) ContentDate: birth date"),
    (lambda ds: setattr(ds, "PatientComments", f"MRN: {PATIENT.other_ids[0]}"),
     "image 2 of 3: (0010,4000) PatientComments: other patient ID"),
    (lambda ds: setattr(ds.file_meta, "MediaStorageSOPInstanceUID", PATIENT.study_uid),
     "image 2 of 3: (0002,0003) MediaStorageSOPInstanceUID: original UID"),
    (lambda ds: setattr(ds, "ReferencedImageSequence", pydicom.Sequence([pydicom.Dataset()]))
     or setattr(ds.ReferencedImageSequence[0], "ReferencedSOPInstanceUID", PATIENT.study_uid),
     "image 2 of 3: (0008,1140)[0].(0008,1155) ReferencedSOPInstanceUID: original UID"),
    (lambda ds: setattr(ds, "DerivationDescription", f"from study {PATIENT.study_uid}."),
     "image 2 of 3: (0008,2111) DerivationDescription: original UID"),
])
def test_a_planted_identifier_stops_everything_and_is_named(tmp_path, change, finding):
    result = deidentified(tmp_path)
    plant(result.files[1], change)
    with pytest.raises(EgressViolation) as error:
        egress_check(result.files, result.identifiers)
    assert finding in error.value.findings
    assert "nothing was sent" in str(error.value)
    message = str(error.value).lower()
    for phi in PATIENT.phi_strings():
        assert phi.lower() not in message
    assert PATIENT.study_uid not in message


def test_an_original_uid_in_a_file_name_is_found(tmp_path):
    result = deidentified(tmp_path)
    renamed = result.files[0].with_name(f"CT.{PATIENT.study_uid}.dcm")
    result.files[0].rename(renamed)
    findings = find_identifiers([renamed], result.identifiers)
    assert findings == ["image 1 of 1: file name: original UID"]


@pytest.mark.parametrize(("identifiers", "value"), [
    (Identifiers(name_parts={"TAN"}), "STANDARD"),  # GE's kernel, a common surname
    (Identifiers(name_parts={"XIA"}), "ORIGINAL\\PRIMARY\\AXIAL"),
    (Identifiers(patient_ids={"12345"}), "9912345678"),
    (Identifiers(uids={"1.2.3.4"}), "1.2.3.45 and 11.2.3.4"),
])
def test_coincidences_inside_other_words_or_numbers_are_not_leaks(tmp_path, identifiers, value):
    result = deidentified(tmp_path)
    plant(result.files[0], lambda ds: setattr(ds, "DerivationDescription", value))
    assert find_identifiers(result.files[:1], identifiers) == []


def test_a_numeric_id_never_matches_inside_a_replaced_uid(tmp_path):
    result = deidentified(tmp_path)
    digits = pydicom.dcmread(result.files[0]).SOPInstanceUID.split(".")[-1]
    pieces = Identifiers(patient_ids={digits[5:12]}, uids={digits[:8]})
    assert find_identifiers(result.files, pieces) == []


def test_identifiers_can_be_collected_again_from_the_originals(tmp_path):
    from dicom_ops.deid.engine import identifiers_of

    result = deidentified(tmp_path)
    originals = sorted((tmp_path / "in").iterdir())
    assert identifiers_of(originals, RECIPE) == result.identifiers
    assert list((tmp_path / "in").iterdir()) == originals


def test_names_in_other_character_sets_are_recognised(tmp_path):
    series = make_ct_series(PATIENT, SeriesGeometry(slices=2, rows=8, columns=8))
    for ds in series:
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = "Ünal^Zoë"
    result = deidentify_series(write_series(series, tmp_path / "in"), tmp_path / "out", RECIPE,
                               KEYS)
    assert {"Ünal", "Zoë"} <= result.identifiers.name_parts
    plant(result.files[0], lambda ds: setattr(ds, "ImageComments", "seen by ZOË today"))
    assert find_identifiers(result.files[:1], result.identifiers) == [
        "image 1 of 1: (0020,4000) ImageComments: patient name part"]


def test_iso_2022_names_are_decoded_for_the_check():
    from dicom_ops.deid.identifiers import decode_text, name_parts

    raw = "Yamada^Tarou=山田^太郎".encode("iso2022_jp")
    text = decode_text(raw, "\\ISO 2022 IR 87", "PN")
    assert {"Yamada", "Tarou", "山田", "太郎"} <= name_parts(text)


@pytest.mark.parametrize(("change", "finding"), [
    (lambda ds: setattr(ds, "InstitutionName", f"clinic {PATIENT.family_name}"),
     "image 1 of 3: (0008,0080) InstitutionName: patient name part"),  # LO
    (lambda ds: setattr(ds, "StationName", PATIENT.patient_id),
     "image 1 of 3: (0008,1010) StationName: patient ID"),  # SH
    (lambda ds: setattr(ds, "TextValue", f"follow-up for {PATIENT.given_name}"),
     "image 1 of 3: (0040,A160) TextValue: patient name part"),  # UT
    (lambda ds: ds.add(pydicom.DataElement(0x00324000, "UN", f"{PATIENT.accession}".encode())),
     "image 1 of 3: (0032,4000) StudyComments: accession number"),  # UN, standard tag
    (lambda ds: setattr(ds, "ImageType", ["DERIVED", "PRIMARY", PATIENT.family_name.upper()]),
     "image 1 of 3: (0008,0008) ImageType: patient name part"),  # CS, not a defined term
    (lambda ds: setattr(ds.file_meta, "SourceApplicationEntityTitle", PATIENT.patient_id),
     "image 1 of 3: (0002,0016) SourceApplicationEntityTitle: patient ID"),  # file meta AE
    (lambda ds: setattr(ds.DeidentificationMethodCodeSequence[0], "CodeMeaning",
                        f"Basic Application Confidentiality Profile {PATIENT.family_name}"),
     "image 1 of 3: (0012,0064)[0].(0008,0104) CodeMeaning: patient name part"),
])
def test_every_kind_of_value_is_searched(tmp_path, change, finding):
    result = deidentified(tmp_path)
    plant(result.files[0], change)
    assert finding in find_identifiers(result.files, result.identifiers)


def test_a_name_part_that_is_a_defined_term_of_a_code_string_is_not_a_leak(tmp_path):
    series = make_ct_series(PATIENT, SeriesGeometry(slices=2, rows=8, columns=8))
    for ds in series:
        ds.PatientName = "Perfusion^MCA Stroke"
        ds.ImageType = ["DERIVED", "PRIMARY", "PERFUSION"]
        ds.BodyPartExamined = "HEAD"
    result = deidentify_series(write_series(series, tmp_path / "in"), tmp_path / "out", RECIPE,
                               KEYS)
    assert {"Perfusion", "Stroke", "MCA"} <= result.identifiers.name_parts
    egress_check(result.files, result.identifiers)
    assert pydicom.dcmread(result.files[0]).ImageType[2] == "PERFUSION"
    plant(result.files[0], lambda ds: setattr(ds, "ImageType", ["DERIVED", "PRIMARY", "STROKE"]))
    assert find_identifiers(result.files[:1], result.identifiers) == [
        "image 1 of 1: (0008,0008) ImageType: patient name part"]


def test_the_standards_de_identification_phrases_are_not_leaks(tmp_path):
    series = make_ct_series(PATIENT, SeriesGeometry(slices=1, rows=8, columns=8))
    for ds in series:
        ds.PatientName = "NAME^PATIENT^NAME"  # as in a vendor's test file (gdcm-US-ALOKA-16)
    result = deidentify_series(write_series(series, tmp_path / "in"), tmp_path / "out", RECIPE,
                               KEYS)
    assert "PATIENT" in result.identifiers.name_parts
    assert "Retain Patient Characteristics Option" in pydicom.dcmread(
        result.files[0]).DeidentificationMethod
    egress_check(result.files, result.identifiers)


def vendor_corpus() -> list[Path]:
    """pydicom's own test files, and pydicom-data's (real vendor files) when installed."""
    import importlib.util
    import os

    from pydicom.data import get_testdata_files

    if importlib.util.find_spec("data_store") is None and os.environ.get("CI") == "true":
        pytest.fail("pydicom-data is not installed (make test installs it)")
    images = []
    for name in sorted(get_testdata_files()):
        try:
            ds = pydicom.dcmread(name, force=True)
        except Exception:  # not DICOM, or broken on purpose
            continue
        if "PixelData" in ds and "SOPInstanceUID" in ds:
            images.append(Path(name))
    return images


def test_no_false_positive_on_the_vendor_corpus(tmp_path):
    from dicom_ops.deid.errors import DeidError

    checked, findings = 0, {}
    for number, source in enumerate(vendor_corpus()):
        try:
            result = deidentify_series([source], tmp_path / str(number), RECIPE, KEYS)
        except DeidError:
            continue  # refused with a reason (truncated, deflated...): nothing would leave
        checked += 1
        found = find_identifiers(result.files, result.identifiers)
        if found:
            findings[source.name] = found
    assert findings == {}
    assert checked >= 100
