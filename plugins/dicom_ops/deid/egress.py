"""The PHI egress check: nothing leaves while it still holds the original patient's identifiers.

Every outgoing file is read with pydicom, an independent reader (the engine's own byte
walker never vouches for its own output), and every element is looked at: the file meta,
sequences at any depth, private tags, binary OB/UN values read as text; and the file's
name. Only pixel data and numeric binary values (OW, OF, US, FL...) are not searched.

How identifiers are matched, and why:

- UI values are compared whole, value by value, with the original UIDs. A replaced UID
  is ``2.25.`` and 39 random digits: a substring test would find a short original UID
  or a numeric ID inside it by chance; whole values never do.
- In all other text (names, IDs, comments, descriptions, codes, file names) an identifier
  is found case-insensitively where it stands as its own token: the characters around a
  hit must not continue it (no letter before or after a name part that begins or ends
  with a letter, no digit next to a numeric ID or date, no digit or ``digit.`` next to a
  UID). So ``SMITH^JOHN``, ``Call Jane Doe``, ``MRN 0012345``, ``ID12345`` and
  ``ref 1.2.3.4`` are hits, while the surname Tan does not fire in the kernel name
  ``STANDARD``, Xia not in ``AXIAL``, a 5-digit ID not inside a longer number. The price:
  an identifier glued to other letters (``JSMITH``) is missed. Names in non-Latin scripts
  (no word boundaries) are matched as plain substrings.
- Name parts and IDs shorter than 3 characters are not searched (they match everything);
  in scripts where one character is a syllable (CJK), name parts of 2 are.
- A value of a code-string (CS) attribute that is one of that attribute's defined terms
  (``defined_terms.py``: ImageType ``PERFUSION``, BodyPartExamined ``HEAD``...) is the
  standard's word, not a leak, even for a patient named Perfusion. Every other CS value
  (a vendor's term, or a name typed into a code field) is searched like other text. The
  same for the standard's de-identification phrases that dicom-ops writes itself (CID 7050
  code meanings in CodeMeaning and DeidentificationMethod).

``egress_check`` raises ``EgressViolation`` naming image, tag path and kind of identifier
(never the value); the caller uploads nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from dicom_ops.deid.defined_terms import DEFINED_TERMS, is_defined_term
from dicom_ops.deid.identifiers import Identifiers

_NOT_SEARCHED_VRS = frozenset({"OW", "OF", "OD", "OL", "OV", "FL", "FD", "SL", "SS", "UL", "US",
                               "SV", "UV", "AT"})
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_MAX_FINDINGS_IN_MESSAGE = 3


class EgressViolation(Exception):
    """Outgoing data still holds an identifier of the original patient. Nothing may be sent."""

    def __init__(self, findings: list[str]) -> None:
        self.findings = findings
        shown = "; ".join(findings[:_MAX_FINDINGS_IN_MESSAGE])
        more = len(findings) - _MAX_FINDINGS_IN_MESSAGE
        suffix = f" (and {more} more)" if more > 0 else ""
        super().__init__(f"PHI egress check failed: {shown}{suffix}; nothing was sent")


def _edge(character: str, before: bool, uid: bool) -> str:
    """A lookaround that stops a hit from continuing a run of the same kind."""
    if uid:
        return r"(?<!\d)(?<!\d\.)" if before else r"(?!\.?\d)"
    if character.isdigit():
        return r"(?<!\d)" if before else r"(?!\d)"
    if character.isalpha():
        return r"(?<![^\W\d_])" if before else r"(?![^\W\d_])"
    return ""


def _token_pattern(values: frozenset[str], uid: bool = False) -> re.Pattern | None:
    alternatives = []
    for value in sorted(values, key=len, reverse=True):
        if any(ord(c) > 0x24F for c in value):  # not Latin script: no word boundaries
            alternatives.append(re.escape(value))
        else:
            alternatives.append(_edge(value[0], True, uid) + re.escape(value)
                                + _edge(value[-1], False, uid))
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None


class _Matcher:
    def __init__(self, identifiers: Identifiers) -> None:
        self.uids = identifiers.uids
        self.patterns = []
        for kind, values in identifiers.by_kind():
            pattern = _token_pattern(values, uid=kind == "original UID")
            if pattern is not None:
                self.patterns.append((kind, pattern))

    def in_text(self, text: str) -> Iterator[str]:
        for kind, pattern in self.patterns:
            if pattern.search(text):
                yield kind

    def in_uids(self, values: list[str]) -> Iterator[str]:
        if any(value.strip(" \0") in self.uids for value in values):
            yield "original UID"


def _text_values(element) -> list[str]:
    value = element.value
    if value is None:
        return []
    if isinstance(value, bytes | bytearray):
        return [bytes(value).decode("latin-1")]
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]  # str, PersonName, numbers


def _findings_in(dataset, matcher: _Matcher, prefix: str) -> Iterator[str]:
    for element in dataset:
        tag = int(element.tag)
        path = f"{prefix}({tag >> 16:04X},{tag & 0xFFFF:04X})"
        vr = str(element.VR)
        if vr == "SQ":
            for index, item in enumerate(element.value or ()):
                yield from _findings_in(item, matcher, f"{path}[{index}].")
            continue
        if tag in _PIXEL_TAGS or vr in _NOT_SEARCHED_VRS:
            continue
        try:
            values = _text_values(element)
        except Exception:  # a value pydicom cannot convert: search its bytes
            values = [bytes(dataset.get_item(element.tag).value or b"").decode("latin-1")]
        if tag in DEFINED_TERMS:
            values = [v for v in values if not is_defined_term(tag, v)]
        kinds = matcher.in_uids(values) if vr == "UI" else matcher.in_text("\\".join(values))
        name = element.keyword or ("private tag" if element.tag.is_private else "")
        label = f"{path} {name}" if name else path
        for kind in kinds:
            yield f"{label}: {kind}"


def find_identifiers(files: Sequence[Path], identifiers: Identifiers) -> list[str]:
    """Every place an identifier was found, as ``image N of M: <tag path> <keyword>: <kind>``."""
    from pydicom import dcmread

    matcher = _Matcher(identifiers)
    findings = []
    total = len(files)
    for number, path in enumerate(files, start=1):
        where = f"image {number} of {total}"
        path = Path(path)
        findings += [f"{where}: file name: {kind}" for kind in matcher.in_text(path.name)]
        dataset = dcmread(path, defer_size=4096, force=True)
        meta = getattr(dataset, "file_meta", None)
        if meta is not None:
            findings += [f"{where}: {found}" for found in _findings_in(meta, matcher, "")]
        findings += [f"{where}: {found}" for found in _findings_in(dataset, matcher, "")]
    return findings


def egress_check(files: Sequence[Path], identifiers: Identifiers) -> None:
    """Raise ``EgressViolation`` if any outgoing file holds an identifier of the patient."""
    findings = find_identifiers(files, identifiers)
    if findings:
        raise EgressViolation(findings)
