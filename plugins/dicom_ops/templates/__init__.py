"""Autosegmentation templates: DRAW-compatible YAML plus our selection rules.

``load_templates(folder)`` validates; ``match_template(headers, templates)`` picks
the one winner (or reports a conflict or no match); ``draw_template_yaml``
is what the DRAW server receives.
"""

from dicom_ops.templates.draw_yaml import draw_template_yaml
from dicom_ops.templates.loader import (
    TemplateError,
    find_template,
    load_template_file,
    load_templates,
    parse_template,
    parse_template_text,
)
from dicom_ops.templates.model import (
    OPERATORS,
    AllOf,
    AnyOf,
    Condition,
    ModelSpec,
    Rule,
    Template,
)
from dicom_ops.templates.rules import (
    FailedCondition,
    TemplateMatch,
    condition_holds,
    failed_conditions,
    headers_from_dataset,
    match_template,
    rule_holds,
    rule_tags,
)

__all__ = [
    "OPERATORS",
    "AllOf",
    "AnyOf",
    "Condition",
    "FailedCondition",
    "ModelSpec",
    "Rule",
    "Template",
    "TemplateError",
    "TemplateMatch",
    "condition_holds",
    "draw_template_yaml",
    "failed_conditions",
    "find_template",
    "headers_from_dataset",
    "load_template_file",
    "load_templates",
    "match_template",
    "parse_template",
    "parse_template_text",
    "rule_holds",
    "rule_tags",
]
