"""What a template is, once loaded and validated: plain frozen values.

A template is DRAW-compatible (``name``, ``protocol``, ``models``) plus our
``priority`` and ``rules``. Rules are a tree of ``AllOf`` / ``AnyOf`` nodes with
``Condition`` leaves; each node keeps its key path in the YAML (``rules.all[2]``)
so that every message can point at the line a physicist has to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Operators and what their ``value`` must be.
VALUE_OPERATORS = ("eq", "ne", "contains", "startswith", "endswith", "regex")
NUMBER_OPERATORS = ("lt", "le", "gt", "ge")
LIST_OPERATORS = ("in", "not_in")
PRESENCE_OPERATORS = ("exists", "missing")
OPERATORS = VALUE_OPERATORS + NUMBER_OPERATORS + LIST_OPERATORS + PRESENCE_OPERATORS


@dataclass(frozen=True)
class Condition:
    """One test of one DICOM attribute, e.g. ``SliceThickness le 3``."""

    path: str
    tag: str
    op: str
    value: Any = None
    case_sensitive: bool = False
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        if self.op in PRESENCE_OPERATORS:
            text = f"{self.tag} {self.op}"
        elif self.op in LIST_OPERATORS:
            text = f"{self.tag} {self.op} [{', '.join(str(v) for v in self.value)}]"
        elif self.op == "regex":
            text = f"{self.tag} regex {self.value!r}"
        else:
            text = f"{self.tag} {self.op} {self.value}"
        return text + (" (case-sensitive)" if self.case_sensitive else "")


@dataclass(frozen=True)
class AllOf:
    path: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class AnyOf:
    path: str
    rules: tuple[Rule, ...]


Rule = Condition | AllOf | AnyOf


@dataclass(frozen=True)
class ModelSpec:
    """One DRAW model and the structures it produces (map id -> structure name)."""

    name: str
    config: str
    trainer_name: str
    postprocess: str
    map: dict[int, str]


@dataclass(frozen=True)
class Template:
    name: str
    protocol: str
    models: dict[int, ModelSpec]
    priority: int
    rules: Rule
    file: str = ""  # the file it came from, for messages
    description: str = ""

    @property
    def structures(self) -> list[str]:
        return [name for model in self.models.values() for name in model.map.values()]
