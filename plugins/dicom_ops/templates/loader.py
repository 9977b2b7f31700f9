"""Load ``*.yml`` templates from a folder, validating every key.

Every problem is reported as ``<file>: <key path>: <problem>``, e.g.
``thorax.yml: rules.all[2].op: unknown operator 'equals' (expected one of eq, ne, ...)``,
and all problems of a file are reported at once so one edit-and-retry fixes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydicom.datadict import tag_for_keyword

from dicom_ops.templates.model import (
    LIST_OPERATORS,
    NUMBER_OPERATORS,
    OPERATORS,
    PRESENCE_OPERATORS,
    AllOf,
    AnyOf,
    Condition,
    ModelSpec,
    Rule,
    Template,
)

TEMPLATE_KEYS = ("name", "protocol", "models", "priority", "rules", "description")
REQUIRED_TEMPLATE_KEYS = ("name", "protocol", "models", "rules")
MODEL_KEYS = ("name", "config", "trainer_name", "postprocess", "map")
CONDITION_KEYS = ("tag", "op", "value", "case_sensitive")


class TemplateError(ValueError):
    """A template file (or the set of them) cannot be used; the message says where and why."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def load_templates(folder: Path) -> list[Template]:
    """Every ``*.yml`` template in ``folder``, sorted by file name; all problems at once."""
    if not folder.is_dir():
        raise TemplateError([f"templates folder {folder} does not exist"])
    templates: list[Template] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.yml")):
        try:
            templates.append(load_template_file(path))
        except TemplateError as exc:
            problems.extend(exc.problems)
    seen: dict[str, str] = {}
    for template in templates:
        key = template.name.casefold()
        if key in seen:
            problems.append(
                f"{template.file}: name: duplicate template name {template.name!r} "
                f"(also in {seen[key]})"
            )
        else:
            seen[key] = template.file
    if problems:
        raise TemplateError(problems)
    return templates


def find_template(templates: Iterable[Template], name: str) -> Template | None:
    """The template called ``name`` (case-insensitive), or None."""
    for template in templates:
        if template.name.casefold() == name.casefold():
            return template
    return None


def load_template_file(path: Path) -> Template:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError([f"{path.name}: cannot read: {exc}"]) from None
    return parse_template_text(text, path.name)


def parse_template_text(text: str, file: str) -> Template:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateError([f"{file}: {where}not valid YAML ({problem})"]) from None
    return parse_template(data, file)


def parse_template(data: Any, file: str) -> Template:
    """A validated ``Template`` from the YAML document ``data``."""
    checker = _Checker(file)
    template = checker.template(data)
    if checker.problems or template is None:
        raise TemplateError(checker.problems)
    return template


class _Checker:
    """Walks one document, collecting problems with their key paths."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{self.file}: {path}: {message}" if path else f"{self.file}: {message}")

    # --- top level -------------------------------------------------------------------

    def template(self, data: Any) -> Template | None:
        if not isinstance(data, dict):
            self.problem("", f"expected a mapping with keys {', '.join(REQUIRED_TEMPLATE_KEYS)}, "
                             f"got {_kind(data)}")
            return None
        self.unknown_keys(data, TEMPLATE_KEYS, "")
        for key in REQUIRED_TEMPLATE_KEYS:
            if key not in data:
                self.problem(key, "missing (required)")
        name = self.text(data, "name", "")
        protocol = self.text(data, "protocol", "")
        description = self.text(data, "description", "", optional=True) or ""
        priority = data.get("priority", 0)
        if not _is_int(priority):
            self.problem("priority", f"expected an integer, got {_kind(priority)}")
            priority = 0
        models = self.models(data.get("models"), "models") if "models" in data else {}
        rules = self.rule(data["rules"], "rules") if "rules" in data else None
        if self.problems or rules is None:
            return None
        return Template(name=name or "", protocol=protocol or "", models=models,
                        priority=int(priority), rules=rules, file=self.file,
                        description=description)

    def unknown_keys(self, data: dict, allowed: tuple[str, ...], path: str) -> None:
        for key in data:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.problem(where, f"unknown key (expected one of {', '.join(allowed)})")

    def text(self, data: dict, key: str, path: str, *, optional: bool = False) -> str | None:
        """The text at ``key`` (a missing key is reported by the caller, if required)."""
        if key not in data or (optional and data[key] is None):
            return None
        value = data[key]
        if _is_int(value) and key != "name":
            return str(value)  # `protocol: 12` or `postprocess: 0` are meant as text
        if not isinstance(value, str) or not value.strip():
            where = f"{path}.{key}" if path else key
            self.problem(where, f"expected non-empty text, got {_kind(value)}")
            return None
        return value.strip()

    # --- models ----------------------------------------------------------------------

    def models(self, data: Any, path: str) -> dict[int, ModelSpec]:
        if not isinstance(data, dict) or not data:
            self.problem(path, f"expected a mapping of model id -> model, got {_kind(data)}")
            return {}
        models: dict[int, ModelSpec] = {}
        for model_id, model in data.items():
            where = f"{path}.{model_id}"
            number = _as_id(model_id)
            if number is None:
                self.problem(where, f"model id must be a positive integer, got {model_id!r}")
                continue
            spec = self.model(model, where)
            if spec is not None:
                models[number] = spec
        return models

    def model(self, data: Any, path: str) -> ModelSpec | None:
        if not isinstance(data, dict):
            self.problem(path, f"expected a mapping with keys {', '.join(MODEL_KEYS)}, "
                               f"got {_kind(data)}")
            return None
        self.unknown_keys(data, MODEL_KEYS, path)
        values = {}
        for key in MODEL_KEYS[:-1]:
            if key not in data:
                self.problem(f"{path}.{key}", "missing (required)")
            values[key] = self.text(data, key, path)
        structures = self.structure_map(data.get("map"), f"{path}.map") if "map" in data else {}
        if "map" not in data:
            self.problem(f"{path}.map", "missing (required)")
        if any(v is None for v in values.values()) or not structures:
            return None
        return ModelSpec(map=structures, **values)

    def structure_map(self, data: Any, path: str) -> dict[int, str]:
        if not isinstance(data, dict) or not data:
            self.problem(path, f"expected a mapping of label id -> structure name, got {_kind(data)}")
            return {}
        structures: dict[int, str] = {}
        for label, name in data.items():
            number = _as_id(label)
            if number is None:
                self.problem(f"{path}.{label}", f"label id must be a positive integer, got {label!r}")
            elif not isinstance(name, str) or not name.strip():
                self.problem(f"{path}.{label}", f"expected a structure name, got {_kind(name)}")
            else:
                structures[number] = name.strip()
        return structures

    # --- rules -----------------------------------------------------------------------

    def rule(self, data: Any, path: str) -> Rule | None:
        if not isinstance(data, dict):
            self.problem(path, f"expected a mapping with 'all', 'any' or 'tag', got {_kind(data)}")
            return None
        groups = [key for key in ("all", "any") if key in data]
        if groups:
            if len(data) != 1:
                others = ", ".join(str(k) for k in data if k != groups[0])
                self.problem(path, f"'{groups[0]}' must stand alone in its mapping "
                                   f"(also found: {others})")
                return None
            return self.group(groups[0], data[groups[0]], f"{path}.{groups[0]}")
        if "tag" in data or "op" in data:
            return self.condition(data, path)
        self.problem(path, "expected 'all', 'any' or a condition with 'tag' and 'op'")
        return None

    def group(self, kind: str, data: Any, path: str) -> Rule | None:
        if not isinstance(data, list) or not data:
            self.problem(path, f"expected a non-empty list of rules, got {_kind(data)}")
            return None
        children = [self.rule(item, f"{path}[{index}]") for index, item in enumerate(data)]
        if any(child is None for child in children):
            return None
        node = AllOf if kind == "all" else AnyOf
        return node(path=path, rules=tuple(children))

    def condition(self, data: dict, path: str) -> Condition | None:
        before = len(self.problems)
        self.unknown_keys(data, CONDITION_KEYS, path)
        tag = data.get("tag")
        if tag is None:
            self.problem(f"{path}.tag", "missing (required)")
        elif not isinstance(tag, str) or tag_for_keyword(tag) is None:
            self.problem(f"{path}.tag", f"unknown DICOM keyword {tag!r} "
                                        "(use the keyword, e.g. SliceThickness)")
        op = data.get("op")
        if op is None:
            self.problem(f"{path}.op", "missing (required)")
        elif op not in OPERATORS:
            self.problem(f"{path}.op", f"unknown operator {op!r} "
                                       f"(expected one of {', '.join(OPERATORS)})")
        case_sensitive = data.get("case_sensitive", False)
        if not isinstance(case_sensitive, bool):
            self.problem(f"{path}.case_sensitive", f"expected true or false, got {_kind(case_sensitive)}")
        value = data.get("value")
        pattern = None
        if op in OPERATORS:
            pattern = self.condition_value(op, "value" in data, value, bool(case_sensitive), path)
        if len(self.problems) > before:
            return None
        if op in LIST_OPERATORS:
            value = tuple(value)
        return Condition(path=path, tag=tag, op=op, value=value,
                         case_sensitive=bool(case_sensitive), pattern=pattern)

    def condition_value(self, op: str, present: bool, value: Any, case_sensitive: bool,
                        path: str) -> re.Pattern[str] | None:
        where = f"{path}.value"
        if op in PRESENCE_OPERATORS:
            if present:
                self.problem(where, f"'{op}' takes no value")
            return None
        if not present or value is None:
            self.problem(where, f"missing (required by '{op}')")
            return None
        if op in NUMBER_OPERATORS:
            if not _is_number(value):
                self.problem(where, f"'{op}' compares numbers, got {_kind(value)}")
            return None
        if op in LIST_OPERATORS:
            if not isinstance(value, list) or not value:
                self.problem(where, f"'{op}' expects a non-empty list, got {_kind(value)}")
                return None
            for index, item in enumerate(value):
                self.scalar(item, f"{where}[{index}]")
            return None
        if not self.scalar(value, where):
            return None
        if op in ("contains", "startswith", "endswith", "regex") and not isinstance(value, str):
            self.problem(where, f"'{op}' compares text, got {_kind(value)} (quote it)")
            return None
        if op == "regex":
            try:
                return re.compile(value, 0 if case_sensitive else re.IGNORECASE)
            except re.error as exc:
                self.problem(where, f"invalid regular expression ({exc})")
        return None

    def scalar(self, value: Any, where: str) -> bool:
        if isinstance(value, bool):
            self.problem(where, "YAML read this as true/false; quote it if you meant text "
                                "such as 'YES', 'NO', 'ON' or 'OFF'")
            return False
        if not isinstance(value, (str, int, float)):
            self.problem(where, f"expected text or a number, got {_kind(value)}")
            return False
        return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_id(key: Any) -> int | None:
    if _is_int(key) and key > 0:
        return key
    if isinstance(key, str) and key.strip().isdigit() and int(key) > 0:
        return int(key)
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, str):
        return f"text {value!r}" if value.strip() else "empty text"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return type(value).__name__
