"""Loading templates: every mistake is named by file, key path and problem; shipped ones work."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
import yaml
from dicom_ops.config import REPO_ROOT
from dicom_ops.templates import (
    TemplateError,
    draw_template_yaml,
    headers_from_dataset,
    load_templates,
    match_template,
    parse_template_text,
)

from tests.factories import make_ct_series

SHIPPED = REPO_ROOT / "include" / "templates"

GOOD = dedent("""\
    name: Thorax
    protocol: THORAX
    models:
      3:
        name: Thorax_OAR
        config: 3d_fullres
        trainer_name: nnUNetTrainer
        postprocess: none
        map: {1: External, 2: Lung_L}
    priority: 4
    rules:
      all:
        - {tag: Modality, op: eq, value: CT}
        - any:
            - {tag: BodyPartExamined, op: in, value: [CHEST, THORAX]}
            - {tag: StudyDescription, op: regex, value: "thora"}
        - {tag: SliceThickness, op: le, value: 3}
    """)


def problems_of(text: str, file: str = "thorax.yml") -> list[str]:
    with pytest.raises(TemplateError) as caught:
        parse_template_text(text, file)
    return caught.value.problems


def test_a_good_template_loads_with_its_draw_fields_priority_and_rules():
    template = parse_template_text(GOOD, "thorax.yml")
    assert (template.name, template.protocol, template.priority) == ("Thorax", "THORAX", 4)
    assert template.models[3].map == {1: "External", 2: "Lung_L"}
    assert template.rules.rules[1].rules[1].path == "rules.all[1].any[1]"


@pytest.mark.parametrize("change, expected", [
    (("op: eq, value: CT", "op: equals, value: CT"),
     "thorax.yml: rules.all[0].op: unknown operator 'equals' (expected one of eq, ne, contains, "
     "startswith, endswith, regex, lt, le, gt, ge, in, not_in, exists, missing)"),
    (("tag: SliceThickness", "tag: SliceThicknes"),
     "thorax.yml: rules.all[2].tag: unknown DICOM keyword 'SliceThicknes'"),
    (("op: le, value: 3", "op: le, value: three"),
     "thorax.yml: rules.all[2].value: 'le' compares numbers, got text 'three'"),
    (("op: in, value: [CHEST, THORAX]", "op: in, value: CHEST"),
     "thorax.yml: rules.all[1].any[0].value: 'in' expects a non-empty list, got text 'CHEST'"),
    (('value: "thora"', 'value: "thora("'),
     "thorax.yml: rules.all[1].any[1].value: invalid regular expression"),
    (("op: eq, value: CT}", "op: eq}"),
     "thorax.yml: rules.all[0].value: missing (required by 'eq')"),
    (("op: eq, value: CT}", "op: exists, value: CT}"),
     "thorax.yml: rules.all[0].value: 'exists' takes no value"),
    (("op: eq, value: CT}", "op: eq, value: CT, case: yes}"),
     "thorax.yml: rules.all[0].case: unknown key (expected one of tag, op, value, case_sensitive)"),
    (("op: eq, value: CT}", "op: eq, value: CT, case_sensitive: maybe}"),
     "thorax.yml: rules.all[0].case_sensitive: expected true or false, got text 'maybe'"),
    (("op: eq, value: CT}", "op: eq, value: NO}"),
     "thorax.yml: rules.all[0].value: YAML read this as true/false; quote it"),
    (("trainer_name: nnUNetTrainer", "trainer: nnUNetTrainer"),
     "thorax.yml: models.3.trainer: unknown key"),
    (("trainer_name: nnUNetTrainer", "trainer: nnUNetTrainer"),
     "thorax.yml: models.3.trainer_name: missing (required)"),
    (("map: {1: External, 2: Lung_L}", "map: {one: External}"),
     "thorax.yml: models.3.map.one: label id must be a positive integer, got 'one'"),
    (("map: {1: External, 2: Lung_L}", "map: {}"),
     "thorax.yml: models.3.map: expected a mapping of label id -> structure name, got an empty mapping"),
    (("  3:\n", "  x3:\n"), "thorax.yml: models.x3: model id must be a positive integer"),
    (("priority: 4", "priority: high"),
     "thorax.yml: priority: expected an integer, got text 'high'"),
    (("priority: 4", "priority: 4\ncolour: blue"),
     "thorax.yml: colour: unknown key (expected one of name, protocol, models, priority, rules"),
    (("name: Thorax\n", ""), "thorax.yml: name: missing (required)"),
    (("  all:\n", "  every:\n"),
     "thorax.yml: rules: expected 'all', 'any' or a condition with 'tag' and 'op'"),
    (("    - {tag: SliceThickness, op: le, value: 3}\n", "    - []\n"),
     "thorax.yml: rules.all[2]: expected a mapping with 'all', 'any' or 'tag', got an empty list"),
    (("    - any:\n", "    - any: []\n      x:\n"),
     "thorax.yml: rules.all[1]: 'any' must stand alone in its mapping (also found: x)"),
])
def test_validation_names_file_key_path_and_problem(change, expected):
    # given a good template with one mistake
    old, new = change
    assert old in GOOD
    # when it is loaded, then the problem is named precisely
    problems = problems_of(GOOD.replace(old, new, 1))
    assert any(p.startswith(expected) for p in problems), problems


def test_all_problems_of_a_file_are_reported_at_once():
    text = GOOD.replace("op: eq, value: CT", "op: equals, value: CT").replace(
        "priority: 4", "priority: high")
    problems = problems_of(text)
    assert len(problems) == 2
    assert "rules.all[0].op" in problems[0] or "rules.all[0].op" in problems[1]


def test_yaml_syntax_errors_name_the_line():
    problems = problems_of("name: Thorax\nrules: {all: [\n", "broken.yml")
    assert problems[0].startswith("broken.yml: line ")
    assert "not valid YAML" in problems[0]


def test_a_document_that_is_not_a_mapping_is_refused():
    assert problems_of("- just\n- a list\n", "list.yml") == [
        "list.yml: expected a mapping with keys name, protocol, models, rules, got a list"]


def test_duplicate_template_names_in_a_folder_are_an_error(tmp_path: Path):
    (tmp_path / "a.yml").write_text(GOOD)
    (tmp_path / "b.yml").write_text(GOOD.replace("name: Thorax", "name: THORAX"))
    with pytest.raises(TemplateError, match=r"b.yml: name: duplicate template name 'THORAX' "
                                            r"\(also in a.yml\)"):
        load_templates(tmp_path)


def test_problems_from_several_files_are_reported_together(tmp_path: Path):
    (tmp_path / "a.yml").write_text(GOOD.replace("priority: 4", "priority: x"))
    (tmp_path / "b.yml").write_text(GOOD.replace("op: le", "op: below"))
    with pytest.raises(TemplateError) as caught:
        load_templates(tmp_path)
    assert [p.split(":")[0] for p in caught.value.problems] == ["a.yml", "b.yml"]


def test_a_missing_templates_folder_is_named(tmp_path: Path):
    with pytest.raises(TemplateError, match="templates folder .*nowhere does not exist"):
        load_templates(tmp_path / "nowhere")


def test_only_yml_files_are_templates(tmp_path: Path):
    (tmp_path / "thorax.yml").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("not a template")
    (tmp_path / "old.yml.bak").write_text("name: [broken")
    assert [t.name for t in load_templates(tmp_path)] == ["Thorax"]


def test_draw_yaml_has_the_draw_fields_and_not_our_rules():
    template = parse_template_text(GOOD, "thorax.yml")
    document = yaml.safe_load(draw_template_yaml(template))
    assert document == {
        "name": "Thorax",
        "protocol": "THORAX",
        "models": {3: {"name": "Thorax_OAR", "config": "3d_fullres",
                       "trainer_name": "nnUNetTrainer", "postprocess": "none",
                       "map": {1: "External", 2: "Lung_L"}}},
    }


def test_shipped_templates_load_and_the_synthetic_thorax_ct_gets_the_thorax_template():
    templates = load_templates(SHIPPED)
    names = {t.name for t in templates}
    assert {"Thorax OARs", "Head and neck OARs"} <= names
    thorax = next(t for t in templates if t.name == "Thorax OARs")
    assert {"External", "Lung_L", "Lung_R"} <= set(thorax.structures)
    match = match_template(headers_from_dataset(make_ct_series()[0]), templates)
    assert match.winner is not None and match.winner.name == "Thorax OARs"
    assert "Head and neck OARs" in match.failures


def test_shipped_head_and_neck_template_takes_a_head_and_neck_ct():
    templates = load_templates(SHIPPED)
    ct = make_ct_series(body_part="HEADNECK", study_description="CT H&N PLANNING")[0]
    assert match_template(headers_from_dataset(ct), templates).winner.name == "Head and neck OARs"
