"""The rule engine: each operator on text, numbers, multi-valued and absent tags; the winner."""

from __future__ import annotations

import pytest
from dicom_ops.templates import (
    Template,
    failed_conditions,
    headers_from_dataset,
    match_template,
    parse_template,
)

from tests.factories import as_localizer, make_ct_series

HEADERS = {
    "Modality": "CT",
    "BodyPartExamined": "CHEST ",  # DICOM pads to even length
    "StudyDescription": "CT Thorax Planning",
    "SliceThickness": "2.50",  # DS arrives as text
    "SeriesNumber": 3,
    "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
    "ProtocolName": "",
}


def condition(tag: str, op: str, value: object = None, **extra: object) -> dict:
    rule = {"tag": tag, "op": op, **extra}
    if value is not None:
        rule["value"] = value
    return rule


def holds(rule: dict, headers: dict = HEADERS) -> bool:
    template = parse_template(_template_data("T", 0, rule), "t.yml")
    return not failed_conditions(template.rules, headers)


def _template_data(name: str, priority: int, rules: dict) -> dict:
    return {
        "name": name,
        "protocol": "P",
        "priority": priority,
        "models": {1: {"name": "M", "config": "3d_fullres", "trainer_name": "nnUNetTrainer",
                       "postprocess": "none", "map": {1: "External"}}},
        "rules": rules,
    }


@pytest.mark.parametrize("rule, expected", [
    (condition("Modality", "eq", "ct"), True),
    (condition("Modality", "eq", "ct", case_sensitive=True), False),
    (condition("Modality", "eq", "CT", case_sensitive=True), True),
    (condition("BodyPartExamined", "eq", "chest"), True),  # padding ignored
    (condition("Modality", "ne", "MR"), True),
    (condition("Modality", "ne", "ct"), False),
    (condition("StudyDescription", "contains", "THORAX"), True),
    (condition("StudyDescription", "contains", "pelvis"), False),
    (condition("StudyDescription", "startswith", "ct "), True),
    (condition("StudyDescription", "endswith", "PLANNING"), True),
    (condition("StudyDescription", "endswith", "planning", case_sensitive=True), False),
    (condition("StudyDescription", "regex", r"thora(x|cic)"), True),
    (condition("StudyDescription", "regex", r"^thorax"), False),  # search, anchored
    (condition("StudyDescription", "regex", r"Thorax", case_sensitive=True), True),
    (condition("StudyDescription", "regex", r"THORAX", case_sensitive=True), False),
    (condition("SliceThickness", "le", 3), True),
    (condition("SliceThickness", "le", 2.5), True),
    (condition("SliceThickness", "lt", 2.5), False),
    (condition("SliceThickness", "gt", 2), True),
    (condition("SliceThickness", "ge", 3), False),
    (condition("SliceThickness", "eq", 2.5), True),  # "2.50" equals 2.5 as a number
    (condition("SeriesNumber", "eq", "3"), True),
    (condition("SeriesNumber", "in", [1, 2, 3]), True),
    (condition("BodyPartExamined", "in", ["head", "chest"]), True),
    (condition("BodyPartExamined", "not_in", ["HEAD", "NECK"]), True),
    (condition("BodyPartExamined", "not_in", ["head", "chest"]), False),
    (condition("Modality", "exists"), True),
    (condition("PatientWeight", "exists"), False),
    (condition("PatientWeight", "missing"), True),
    (condition("ProtocolName", "missing"), True),  # empty counts as missing
    (condition("Modality", "missing"), False),
])
def test_operator_outcomes(rule, expected):
    assert holds(rule) is expected


@pytest.mark.parametrize("rule, expected", [
    (condition("ImageType", "eq", "axial"), True),  # any value may match
    (condition("ImageType", "contains", "PRIM"), True),
    (condition("ImageType", "in", ["LOCALIZER", "AXIAL"]), True),
    (condition("ImageType", "eq", "LOCALIZER"), False),
    (condition("ImageType", "ne", "LOCALIZER"), True),  # no value equals it
    (condition("ImageType", "ne", "AXIAL"), False),  # one value equals it
    (condition("ImageType", "not_in", ["LOCALIZER", "DERIVED"]), True),
    (condition("ImageType", "not_in", ["SECONDARY", "PRIMARY"]), False),
])
def test_multi_valued_tags_match_if_any_value_does(rule, expected):
    assert holds(rule) is expected


@pytest.mark.parametrize("op, value", [
    ("eq", "CT"), ("ne", "CT"), ("contains", "C"), ("startswith", "C"), ("endswith", "T"),
    ("regex", "."), ("lt", 1), ("le", 1), ("gt", 1), ("ge", 1), ("in", ["CT"]),
    ("not_in", ["CT"]), ("exists", None),
])
def test_an_absent_tag_fails_every_operator_but_missing(op, value):
    assert holds(condition("PatientWeight", op, value)) is False


def test_a_value_that_is_not_a_number_never_matches_a_number_comparison():
    assert holds(condition("Modality", "lt", 5)) is False
    assert holds(condition("Modality", "ge", 5)) is False


def test_nested_all_and_any():
    rule = {"all": [condition("Modality", "eq", "CT"),
                    {"any": [condition("BodyPartExamined", "eq", "HEAD"),
                             {"all": [condition("StudyDescription", "contains", "thorax"),
                                      condition("SliceThickness", "le", 3)]}]}]}
    assert holds(rule) is True
    assert holds(rule, {**HEADERS, "SliceThickness": "5"}) is False


def test_failed_conditions_name_the_path_the_rule_and_what_was_found():
    # given a rule whose second member fails
    template = parse_template(_template_data("T", 0, {"all": [
        condition("Modality", "eq", "CT"),
        condition("SliceThickness", "le", 2),
        {"any": [condition("BodyPartExamined", "eq", "HEAD"),
                 condition("PatientWeight", "exists")]},
    ]}), "t.yml")
    # when
    failed = failed_conditions(template.rules, HEADERS)
    # then every failing leaf is reported, with where it is and what the file had
    assert [(f.path, f.condition, f.found) for f in failed] == [
        ("rules.all[1]", "SliceThickness le 2", "2.50"),
        ("rules.all[2].any[0]", "BodyPartExamined eq HEAD", "CHEST"),
        ("rules.all[2].any[1]", "PatientWeight exists", "absent"),
    ]


def _template(name: str, priority: int, rules: dict) -> Template:
    return parse_template(_template_data(name, priority, rules), f"{name}.yml")


CT = condition("Modality", "eq", "CT")
MR = condition("Modality", "eq", "MR")


def test_highest_priority_template_wins():
    templates = [_template("Generic CT", 1, CT), _template("Thorax", 5, CT),
                 _template("Brain MR", 9, MR)]
    match = match_template(HEADERS, templates)
    assert match.winner.name == "Thorax"
    assert match.state_detail is None
    assert [t.name for t in match.matched] == ["Thorax", "Generic CT"]
    assert set(match.failures) == {"Brain MR"}


def test_a_tie_at_the_top_is_a_conflict_naming_both_templates():
    templates = [_template("Lung SBRT", 5, CT), _template("Breast", 5, CT),
                 _template("Generic CT", 1, CT)]
    match = match_template(HEADERS, templates)
    assert match.winner is None
    assert match.state_detail == "conflict: Breast, Lung SBRT"


def test_no_matching_template_is_no_template():
    match = match_template(HEADERS, [_template("Brain MR", 9, MR)])
    assert match.winner is None
    assert match.state_detail == "no template"
    assert match.failures["Brain MR"][0].found == "CT"


def test_headers_from_a_dataset_give_plain_values_for_rules():
    dataset = make_ct_series(series_description="Thorax 2.5mm")[0]
    headers = headers_from_dataset(dataset)
    assert headers["Modality"] == "CT"
    assert headers["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert isinstance(headers["PatientName"], str)
    assert "PixelData" not in headers
    assert "RequestAttributesSequence" not in headers


def test_a_localizer_header_fails_an_image_type_ne_localizer_rule():
    localizer = headers_from_dataset(as_localizer(make_ct_series()[0]))
    assert holds(condition("ImageType", "ne", "LOCALIZER"), localizer) is False
