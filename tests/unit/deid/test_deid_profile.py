"""PS3.15 Table E.1-1: every attribute is handled per its action or per an option the output
declares, the per-attribute list (include/deid/profile.csv) says what the recipe really
does, and it agrees with an independent transcription of the standard (tests/data)."""

import csv
from pathlib import Path

import pydicom
import pytest
from dicom_ops.config import REPO_ROOT
from dicom_ops.deid.engine import deidentify_series
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.profile import PROFILE_CSV, read_table, render
from dicom_ops.deid.recipe import load_recipe
from pydicom.datadict import dictionary_VR

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series

SHIPPED = REPO_ROOT / "include" / "deid" / "deid.dicom"
STANDARD = Path(__file__).parents[2] / "data" / "ps3.15-table-e.1-1.csv"
KEYS = DeidKeys.from_secret("profile-test-secret-0123456789")
# Option columns of the transcription, by the CID 7050 code that declares the option.
OPTION_COLUMNS = {"113107": "retain_modified_dates", "113108": "retain_patient_characteristics"}
# A date-time the table gives no option action for; shifted like every other date.
SHIFTED_THOUGH_UNLISTED = {"(0016,0077)"}  # GPS Time Stamp


def standard_rows() -> dict[str, dict[str, str]]:
    with STANDARD.open(newline="") as stream:
        return {row["tag"]: row for row in csv.DictReader(
            line for line in stream if not line.startswith("#"))}


def vr_of(tag: str) -> str:
    if not tag[1:5].isalnum() or "X" in tag or "GGGG" in tag:
        return ""
    return str(dictionary_VR(int(tag[1:5] + tag[6:10], 16)))


def declared_in_output(tmp_path: Path) -> pydicom.Dataset:
    series = make_ct_series(synthetic_patient(3), SeriesGeometry(slices=1, rows=8, columns=8))
    result = deidentify_series(write_series(series, tmp_path / "in"), tmp_path / "out",
                               load_recipe(SHIPPED), KEYS)
    return pydicom.dcmread(result.files[0])


def test_the_per_attribute_list_is_what_the_recipe_does():
    assert Path(PROFILE_CSV).read_text() == render(load_recipe(SHIPPED), read_table()), (
        "include/deid/profile.csv is stale: run python -m dicom_ops.deid.profile")


def test_the_list_has_every_row_of_the_standard_with_its_action():
    ours = {row["tag"]: row["table_action"] for row in read_table()}
    assert ours == {tag: row["basic_profile"] for tag, row in standard_rows().items()}
    assert len(ours) > 600


def test_every_attribute_is_handled_per_its_action_or_a_declared_option(tmp_path):
    declared = {item.CodeValue for item in
                declared_in_output(tmp_path).DeidentificationMethodCodeSequence}
    standard = standard_rows()
    refused = []
    for row in read_table():
        basic = standard[row["tag"]]["basic_profile"]
        allowed = set(basic.replace("*", "").split("/"))
        ours, why, vr = row["our_action"], row["why"], vr_of(row["tag"])
        if why == "":
            ok = ours in allowed or (ours == "D" and "Z" in allowed)
        elif why == "stricter":  # removed where a dummy or empty value would do
            ok = ours == "X" and bool(allowed & {"D", "Z"})
        elif why == "new UID":
            ok = ours == "U" and vr == "UI"
        elif why in OPTION_COLUMNS:
            option = standard[row["tag"]][OPTION_COLUMNS[why]]
            if row["tag"] in SHIFTED_THOUGH_UNLISTED:
                option = "C"
            time_of_day_kept = why == "113107" and ours == "K" and vr == "TM" and option == "C"
            ok = why in declared and (ours == option or time_of_day_kept)
        else:
            ok = False
        if not ok:
            refused.append((row["tag"], row["keyword"], basic, ours, why))
    assert refused == []


def test_the_output_declares_profile_and_options_as_codes_and_in_words(tmp_path):
    ds = declared_in_output(tmp_path)
    codes = [(i.CodeValue, i.CodingSchemeDesignator, i.CodeMeaning)
             for i in ds.DeidentificationMethodCodeSequence]
    assert codes == [
        ("113100", "DCM", "Basic Application Confidentiality Profile"),
        ("113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option"),
        ("113108", "DCM", "Retain Patient Characteristics Option"),
    ]
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert list(ds.DeidentificationMethod) == [meaning for _, _, meaning in codes]
    options = {row["why"] for row in read_table()} - {"", "stricter", "new UID"}
    assert options == {"113107", "113108"}


def test_a_declaration_already_in_the_input_is_replaced(tmp_path):
    series = make_ct_series(synthetic_patient(5), SeriesGeometry(slices=2, rows=8, columns=8))
    for ds in series:
        item = pydicom.Dataset()
        item.CodeValue, item.CodingSchemeDesignator = "113110", "DCM"
        item.CodeMeaning = "Retain UIDs Option"
        ds.DeidentificationMethodCodeSequence = [item]
    result = deidentify_series(write_series(series, tmp_path / "in"), tmp_path / "out",
                               load_recipe(SHIPPED), KEYS)
    for path in result.files:
        values = [i.CodeValue for i in pydicom.dcmread(path).DeidentificationMethodCodeSequence]
        assert values == ["113100", "113107", "113108"]


@pytest.mark.parametrize("line", ["KEEP PatientComments", "KEEP StationName",
                                  "KEEP TemplateExtensionCreatorUID"])
def test_a_recipe_that_lets_a_listed_attribute_through_declares_no_profile(tmp_path, line):
    recipe_path = tmp_path / "leaky.dicom"
    recipe_path.write_text(SHIPPED.read_text().replace("REMOVE ALL\n", f"REMOVE ALL\n{line}\n"))
    recipe = load_recipe(recipe_path)
    assert recipe.declared == ()
    series = make_ct_series(synthetic_patient(6), SeriesGeometry(slices=1, rows=8, columns=8))
    result = deidentify_series(write_series(series, tmp_path / "in"), tmp_path / "out", recipe,
                               KEYS)
    assert "DeidentificationMethodCodeSequence" not in pydicom.dcmread(result.files[0])


def test_template_extension_creator_uid_gets_a_new_consistent_uid(tmp_path):
    original = "1.2.826.0.1.3680043.99.7"
    series = make_ct_series(synthetic_patient(7), SeriesGeometry(slices=2, rows=8, columns=8))
    for ds in series:
        item = pydicom.Dataset()
        item.TemplateExtensionCreatorUID = original
        ds.ContentTemplateSequence = [item]
        ds.TemplateExtensionCreatorUID = original
    result = deidentify_series(write_series(series, tmp_path / "in"), tmp_path / "out",
                               load_recipe(SHIPPED), KEYS)
    new = {pydicom.dcmread(p).TemplateExtensionCreatorUID for p in result.files}
    assert len(new) == 1 and new.pop().startswith("2.25.")
    assert original in result.identifiers.uids
