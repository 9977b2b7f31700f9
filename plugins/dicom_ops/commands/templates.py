"""`dicom-ops templates list|test`: the autosegmentation templates and their rules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from dicom_ops.cli import CommandError
from dicom_ops.config import get_settings
from dicom_ops.templates import (
    AllOf,
    AnyOf,
    Rule,
    Template,
    TemplateError,
    headers_from_dataset,
    load_templates,
    match_template,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("templates", help="list templates, or test which one a file gets")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the templates in the templates folder")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)
    test = actions.add_parser("test", help="which template wins for a DICOM file, and why "
                                           "the others do not")
    test.add_argument("file", type=Path, metavar="FILE.dcm")
    test.set_defaults(func=_test)


def _templates() -> list[Template]:
    folder = get_settings().templates_dir
    try:
        return load_templates(folder)
    except TemplateError as exc:
        raise CommandError(str(exc)) from None


def _list(args: argparse.Namespace) -> int:
    templates = _templates()
    if args.json:
        print(json.dumps([template_as_dict(t) for t in templates], indent=2))
        return 0
    if not templates:
        print(f"no templates (*.yml) in {get_settings().templates_dir}")
        return 0
    print(f"{'NAME':<28}  {'PRIO':>4}  {'PROTOCOL':<10}  {'FILE':<20}  STRUCTURES")
    for t in templates:
        print(f"{t.name:<28}  {t.priority:>4}  {t.protocol:<10}  {t.file:<20}  "
              f"{', '.join(t.structures)}")
    return 0


def _test(args: argparse.Namespace) -> int:
    templates = _templates()
    try:
        dataset = dcmread(args.file, stop_before_pixels=True)
    except FileNotFoundError:
        raise CommandError(f"{args.file}: no such file") from None
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise CommandError(f"{args.file}: not a readable DICOM file ({exc})") from None
    match = match_template(headers_from_dataset(dataset), templates)
    if match.winner is not None:
        w = match.winner
        print(f"winner: {w.name} ({w.file}, priority {w.priority})")
    elif match.conflict:
        print(f"conflict: {', '.join(match.conflict)} match with the same priority; a series "
              f"like this is marked '{match.state_detail}' and nothing is sent")
    else:
        print("no template: a series like this is marked 'no template' and nothing is sent")
    others = [t for t in templates if match.winner is None or t.name != match.winner.name]
    for template in others:
        failures = match.failures.get(template.name)
        if failures is None:
            outcome = "matched (conflict)" if template.name in match.conflict else \
                "matched, lower priority"
            print(f"- {template.name} ({template.file}, priority {template.priority}): {outcome}")
            continue
        print(f"- {template.name} ({template.file}, priority {template.priority}): failed")
        for failure in failures:
            print(f"    {failure.path}: {failure.condition}  (found: {failure.found})")
    return 0


def template_as_dict(template: Template) -> dict[str, Any]:
    return {
        "name": template.name,
        "protocol": template.protocol,
        "priority": template.priority,
        "file": template.file,
        "description": template.description,
        "structures": template.structures,
        "models": {
            str(model_id): {"name": m.name, "config": m.config, "trainer_name": m.trainer_name,
                            "postprocess": m.postprocess,
                            "map": {str(k): v for k, v in m.map.items()}}
            for model_id, m in template.models.items()
        },
        "rules": _rule_as_dict(template.rules),
    }


def _rule_as_dict(rule: Rule) -> dict[str, Any]:
    if isinstance(rule, AllOf):
        return {"all": [_rule_as_dict(r) for r in rule.rules]}
    if isinstance(rule, AnyOf):
        return {"any": [_rule_as_dict(r) for r in rule.rules]}
    shown: dict[str, Any] = {"tag": rule.tag, "op": rule.op}
    if rule.value is not None:
        shown["value"] = list(rule.value) if isinstance(rule.value, tuple) else rule.value
    if rule.case_sensitive:
        shown["case_sensitive"] = True
    return shown
