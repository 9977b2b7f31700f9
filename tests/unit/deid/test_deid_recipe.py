"""The recipe: the shipped one loads; mistakes are refused naming file and line; what each
kind of element becomes follows deid's rules; the compiled recipe can be cached."""

from pathlib import Path

import pytest
from dicom_ops.config import REPO_ROOT
from dicom_ops.deid.recipe import (
    DROP,
    NESTED,
    PASS,
    STEPS,
    TOP,
    UNTOUCHED,
    RecipeError,
    load_recipe,
)
from pydicom.datadict import tag_for_keyword

SHIPPED = REPO_ROOT / "include" / "deid" / "deid.dicom"


def write_recipe(folder: Path, body: str) -> Path:
    path = folder / "deid.dicom"
    path.write_text("FORMAT dicom\n\n%header\n\n" + body)
    return path


def kind(recipe, keyword: str, vr: bytes, level: int = TOP) -> int:
    return recipe.program(level, tag_for_keyword(keyword), vr)[0]


def test_the_shipped_recipe_keeps_geometry_and_removes_identity():
    recipe = load_recipe(SHIPPED)
    for keyword, vr in [("ImagePositionPatient", b"DS"), ("PixelSpacing", b"DS"),
                        ("Rows", b"US"), ("RescaleSlope", b"DS"), ("Modality", b"CS"),
                        ("SliceThickness", b"DS"), ("ImageType", b"CS")]:
        assert kind(recipe, keyword, vr) == UNTOUCHED, keyword
    for keyword, vr in [("InstitutionName", b"LO"), ("PatientAddress", b"LO"),
                        ("OtherPatientIDsSequence", b"SQ"), ("ImageComments", b"LT"),
                        ("StudyDescription", b"LO"), ("OperatorsName", b"PN"),
                        ("PatientAge", b"AS")]:
        assert kind(recipe, keyword, vr) == DROP, keyword
    for curve_or_overlay, vr in [(0x60003000, b"OW"), (0x60000010, b"US"), (0x50003000, b"OW")]:
        assert recipe.program(TOP, curve_or_overlay, vr)[0] == DROP
    for keyword, vr in [("PatientName", b"PN"), ("PatientID", b"LO"),
                        ("StudyInstanceUID", b"UI"), ("StudyDate", b"DA"),
                        ("PatientBirthDate", b"DA"), ("AccessionNumber", b"SH")]:
        assert kind(recipe, keyword, vr) == STEPS, keyword
    assert [a.field for a in recipe.adds] == ["PatientIdentityRemoved", "DeidentificationMethod",
                                              "DeidentificationMethodCodeSequence",
                                              "LongitudinalTemporalInformationModified"]


@pytest.mark.parametrize(("line", "message"), [
    ("remove PatientName", "line 5: write the action in capitals"),
    ("DELETE PatientName", "line 5: unknown action DELETE"),
    ("REPLACE PatientName", "line 5: REPLACE needs a value"),
    ("REPLACE PatientName var:nickname", "line 5: unknown var:nickname"),
    ("REPLACE PatientName deid_func:dicom_uuid", "line 5: deid_func: values are not supported"),
    ("REMOVE PatientName func:is_old", "line 5: conditional REMOVE is not supported"),
    ("REMOVE RequestAttributesSequence__AccessionNumber", "line 5: nested fields"),
    ("REMOVE endwith:Date", "line 5: unknown expander endwith:"),
    ("REMOVE select:VRUI", "line 5: select: expects VR:xx or group:gggg"),
    ("JITTER StudyDate soon", "line 5: JITTER needs var:date_offset_days or a whole number"),
    ("ADD PatientsNickname DOE", "line 5: ADD needs a keyword or tag"),
    ("ADD Rows 12", "line 5: ADD supports text attributes only"),
    ("ADD PatientName Zoë", "line 5: values must be ASCII"),
    ("KEEP Modality CT", "line 5: KEEP takes a field only"),
    ("LABEL Fine", "line 5: unknown action LABEL"),
])
def test_a_mistake_is_refused_naming_the_file_and_line(tmp_path, line, message):
    path = write_recipe(tmp_path, line + "\n")
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_values_lists_and_a_missing_format_are_refused(tmp_path):
    lists = tmp_path / "lists.dicom"
    lists.write_text("FORMAT dicom\n%values cookies\nSPLIT PatientID by=^\n")
    with pytest.raises(RecipeError, match="line 2: %values lists are not supported"):
        load_recipe(lists)
    formatless = tmp_path / "formatless.dicom"
    formatless.write_text("%header\nREMOVE ALL\n")
    with pytest.raises(RecipeError, match="must start with FORMAT dicom"):
        load_recipe(formatless)
    with pytest.raises(RecipeError, match="cannot read the recipe"):
        load_recipe(tmp_path / "absent.dicom")


def test_filter_sections_are_accepted_and_ignored(tmp_path):
    path = tmp_path / "deid.dicom"
    path.write_text("FORMAT dicom\n\n%filter graylist\n\nLABEL Screens\n"
                    "  contains ImageType SCREEN\n\n%header\n\nREMOVE PatientName\n")
    assert [a.field for a in load_recipe(path).actions] == ["PatientName"]


def test_keep_wins_over_remove_all_and_replace_shields_from_remove(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, "REMOVE ALL\nKEEP Modality\n"
                                                "REPLACE PatientID var:pseudonym\n"))
    assert kind(recipe, "Modality", b"CS") == UNTOUCHED
    assert kind(recipe, "PatientID", b"LO") == STEPS
    assert recipe.program(TOP, tag_for_keyword("PatientID"), b"LO")[1] == (
        ("REPLACE", ("var", "pseudonym")),)
    assert kind(recipe, "PatientName", b"PN") == DROP


def test_actions_apply_in_order_and_add_revives_a_removed_element(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, "REMOVE ALL\nBLANK StudyID\n"
                                                "ADD PatientIdentityRemoved YES\n"))
    assert kind(recipe, "StudyID", b"SH") == DROP  # blanked, then removed: deid's order
    steps = recipe.program(TOP, tag_for_keyword("PatientIdentityRemoved"), b"CS")[1]
    assert [step[0] for step in steps] == ["REMOVE", "ADD"]


def test_expanders_match_keywords_names_and_tags(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, "REMOVE startswith:Patient\n"
                                                "REMOVE contains:Physician\n"
                                                "BLANK (0008,0080)\nREMOVE select:group:0018\n"
                                                "REMOVE endswith:Time\n"))
    assert kind(recipe, "PatientAddress", b"LO") == DROP
    assert kind(recipe, "ReferringPhysicianName", b"PN") == DROP
    assert kind(recipe, "InstitutionName", b"LO") == STEPS
    assert kind(recipe, "KVP", b"DS") == DROP
    assert kind(recipe, "StudyTime", b"TM") == DROP
    assert kind(recipe, "Modality", b"CS") == PASS
    assert kind(recipe, "PatientAddress", b"LO", NESTED) == DROP


def test_a_cached_recipe_loads_the_same_and_a_changed_file_is_read_anew(tmp_path):
    path = write_recipe(tmp_path, "REMOVE ALL\nKEEP Modality\nADD PatientIdentityRemoved YES\n")
    cache = tmp_path / "cache"
    first = load_recipe(path, cache_dir=cache)
    assert len(list(cache.glob("deid-*.marshal"))) == 1
    again = load_recipe(path, cache_dir=cache)
    assert [(a.action, a.field, a.value) for a in again.actions] == [
        (a.action, a.field, a.value) for a in first.actions]
    assert kind(again, "Modality", b"CS") == UNTOUCHED
    path.write_text(path.read_text() + "KEEP Rows\n")
    assert kind(load_recipe(path, cache_dir=cache), "Rows", b"US") == UNTOUCHED
    assert len(list(cache.glob("deid-*.marshal"))) == 2
