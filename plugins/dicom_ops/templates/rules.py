"""The rule engine: which template wins for a series, and why the others did not.

Headers are a plain mapping of DICOM keyword -> value (``headers_from_dataset``
builds one from a pydicom dataset). Semantics, in the words of the README:

- text is compared case-insensitively, after trimming DICOM padding, unless the
  condition says ``case_sensitive: true``;
- when the rule's value is a number, the tag's value is compared as a number
  (``"2.50"`` equals ``2.5``); a value that is not a number never matches;
- a multi-valued tag (``ImageType``) matches when any of its values does; the
  negative operators ``ne`` and ``not_in`` hold when *no* value is equal / listed;
- an absent or empty tag fails every operator except ``missing``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from dicom_ops.templates.model import AllOf, AnyOf, Condition, Rule, Template

Headers = Mapping[str, Any]


@dataclass(frozen=True)
class FailedCondition:
    """A condition that did not hold: where it is, what it says, what the file had."""

    path: str
    condition: str
    found: str


@dataclass(frozen=True)
class TemplateMatch:
    """The outcome of matching one series against all templates.

    ``failures`` holds the values found in the file: show them to the operator
    (``templates test``), never log them or put them in events (a rule may look at PHI).
    """

    winner: Template | None
    conflict: tuple[str, ...] = ()  # names tied at the top priority (2 or more)
    matched: tuple[Template, ...] = ()  # every template whose rules held, best first
    failures: dict[str, list[FailedCondition]] = field(default_factory=dict)

    @property
    def state_detail(self) -> str | None:
        """What a series shows when no single template wins."""
        if self.conflict:
            return "conflict: " + ", ".join(self.conflict)
        if self.winner is None:
            return "no template"
        return None


def match_template(headers: Headers, templates: Sequence[Template]) -> TemplateMatch:
    """The single highest-priority template whose rules hold, or a conflict, or nothing."""
    matched: list[Template] = []
    failures: dict[str, list[FailedCondition]] = {}
    for template in templates:
        failed = failed_conditions(template.rules, headers)
        if failed:
            failures[template.name] = failed
        else:
            matched.append(template)
    matched.sort(key=lambda t: (-t.priority, t.name.casefold()))
    if not matched:
        return TemplateMatch(winner=None, failures=failures)
    top = [t for t in matched if t.priority == matched[0].priority]
    if len(top) > 1:
        return TemplateMatch(winner=None, conflict=tuple(t.name for t in top),
                             matched=tuple(matched), failures=failures)
    return TemplateMatch(winner=top[0], matched=tuple(matched), failures=failures)


def rule_holds(rule: Rule, headers: Headers) -> bool:
    return not failed_conditions(rule, headers)


def failed_conditions(rule: Rule, headers: Headers) -> list[FailedCondition]:
    """The conditions that make ``rule`` fail (empty when it holds).

    For ``all``: the failing members. For ``any``: every member, when none holds.
    """
    if isinstance(rule, AllOf):
        return [failure for child in rule.rules for failure in failed_conditions(child, headers)]
    if isinstance(rule, AnyOf):
        collected: list[FailedCondition] = []
        for child in rule.rules:
            failed = failed_conditions(child, headers)
            if not failed:
                return []
            collected.extend(failed)
        return collected
    if condition_holds(rule, headers.get(rule.tag)):
        return []
    return [FailedCondition(rule.path, rule.describe(), _show(headers.get(rule.tag)))]


def condition_holds(condition: Condition, found: Any) -> bool:
    values = _values(found)
    if condition.op == "exists":
        return bool(values)
    if condition.op == "missing":
        return not values
    if not values:
        return False
    if condition.op == "ne":
        return not any(_equal(condition, v, condition.value) for v in values)
    if condition.op == "not_in":
        return not any(_equal(condition, v, item) for v in values for item in condition.value)
    return any(_holds_for_value(condition, v) for v in values)


def _holds_for_value(condition: Condition, value: Any) -> bool:
    op, expected = condition.op, condition.value
    if op == "eq":
        return _equal(condition, value, expected)
    if op == "in":
        return any(_equal(condition, value, item) for item in expected)
    if op in ("lt", "le", "gt", "ge"):
        number = _number(value)
        if number is None:
            return False
        return {"lt": number < expected, "le": number <= expected,
                "gt": number > expected, "ge": number >= expected}[op]
    text = _text(condition, value)
    if op == "regex":
        assert condition.pattern is not None
        return condition.pattern.search(str(value).strip()) is not None
    wanted = _text(condition, expected)
    if op == "contains":
        return wanted in text
    if op == "startswith":
        return text.startswith(wanted)
    if op == "endswith":
        return text.endswith(wanted)
    raise ValueError(f"unknown operator {op!r}")


def _equal(condition: Condition, value: Any, expected: Any) -> bool:
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        number = _number(value)
        return number is not None and number == expected
    return _text(condition, value) == _text(condition, expected)


def _text(condition: Condition, value: Any) -> str:
    text = str(value).strip()
    return text if condition.case_sensitive else text.casefold()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _values(found: Any) -> list[Any]:
    """The non-empty values of a tag, as a list (empty when absent)."""
    if found is None:
        return []
    items = list(found) if isinstance(found, (list, tuple, MultiValue)) else [found]
    return [v for v in items if v is not None and str(v).strip() != ""]


def _show(found: Any) -> str:
    values = _values(found)
    if not values:
        return "absent"
    return "\\".join(str(v).strip() for v in values)


def headers_from_dataset(dataset: Dataset, keywords: Iterable[str] | None = None
                         ) -> dict[str, Any]:
    """Top-level attributes of ``dataset`` as keyword -> plain value (no sequences, no pixels).

    With ``keywords``, only those (what the rules use) are read.
    """
    headers: dict[str, Any] = {}
    wanted = set(keywords) if keywords is not None else None
    for element in dataset:
        keyword = element.keyword
        vr = str(element.VR)
        if not keyword or vr in ("SQ", "UN") or vr.startswith("O") or " or " in vr:
            continue
        if wanted is not None and keyword not in wanted:
            continue
        headers[keyword] = _plain(element.value)
    return headers


def _plain(value: Any) -> Any:
    if isinstance(value, MultiValue | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    return value


def rule_tags(templates: Iterable[Template]) -> set[str]:
    """Every DICOM keyword the templates' rules look at."""
    tags: set[str] = set()
    pending: list[Rule] = [t.rules for t in templates]
    while pending:
        rule = pending.pop()
        if isinstance(rule, Condition):
            tags.add(rule.tag)
        else:
            pending.extend(rule.rules)
    return tags
