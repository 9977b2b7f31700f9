"""The PHI egress check: nothing leaves while it still holds the original patient's identifiers.

Every outgoing file is read with pydicom, an independent reader (the engine's own byte
walker never vouches for its own output), and every element is looked at: the file meta,
sequences at any depth, private tags, binary OB/UN values read as text; and the file's
name. Numeric binary values (OW, OF, US, FL...) are not searched, nor is the image in
pixel data: only its bytes that are not the image (padding beyond the size the image
attributes give, bytes outside the items of encapsulated data; ``pixel_data.py``), all
of it only with DICOM_OPS_EGRESS_PIXEL_SEARCH. Each distinct header value is matched
once per check: the slices of a series repeat most of them byte for byte.

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

from pydicom.datadict import keyword_for_tag

from dicom_ops.deid.defined_terms import DEFINED_TERMS, is_defined_term
from dicom_ops.deid.identifiers import Identifiers
from dicom_ops.deid.pixel_data import PIXEL_DATA, bytes_beyond_image

_NOT_SEARCHED_VRS = frozenset({"OW", "OF", "OD", "OL", "OV", "FL", "FD", "SL", "SS", "UL", "US",
                               "SV", "UV", "AT"})
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, PIXEL_DATA})
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


class _Walk:
    """One check's walk over its files, remembering what each distinct value held.

    The slices of a series repeat most of their header values byte for byte; what a
    value holds depends only on its tag, VR and bytes, so each distinct one is
    converted and matched once per check, not once per slice.
    """

    def __init__(self, matcher: _Matcher, search_pixel_data: bool) -> None:
        self.matcher = matcher
        self.search_pixel_data = search_pixel_data
        self._kinds: dict[tuple[int, str, bytes], list[str]] = {}

    def findings(self, dataset, prefix: str) -> Iterator[str]:
        for raw in dataset.elements():  # unconverted: a repeated value is never parsed
            tag = int(raw.tag)
            path = f"{prefix}({tag >> 16:04X},{tag & 0xFFFF:04X})"
            if tag in _PIXEL_TAGS:
                yield from self._pixel_findings(dataset, raw, path)
                continue
            vr = raw.VR
            if vr is None or vr == "SQ" or not isinstance(raw.value, bytes):
                element = dataset[raw.tag]  # implicit VR, a sequence, converted or deferred
                vr = str(element.VR)
                if vr == "SQ":
                    for index, item in enumerate(element.value or ()):
                        yield from self.findings(item, f"{path}[{index}].")
                    continue
                key = None
            else:
                key = (tag, str(vr), raw.value)
            if str(vr) in _NOT_SEARCHED_VRS:
                continue
            kinds = self._kinds.get(key) if key is not None else None
            if kinds is None:
                kinds = list(self._match(dataset, dataset[raw.tag], tag, str(vr)))
                if key is not None:
                    self._kinds[key] = kinds
            if kinds:
                name = (dataset_dictionary_keyword(tag)
                        or ("private tag" if raw.tag.is_private else ""))
                label = f"{path} {name}" if name else path
                for kind in kinds:
                    yield f"{label}: {kind}"

    def _match(self, dataset, element, tag: int, vr: str) -> Iterator[str]:
        try:
            values = _text_values(element)
        except Exception:  # a value pydicom cannot convert: search its bytes
            values = [bytes(dataset.get_item(element.tag).value or b"").decode("latin-1")]
        if tag in DEFINED_TERMS:
            values = [v for v in values if not is_defined_term(tag, v)]
        matcher = self.matcher
        return matcher.in_uids(values) if vr == "UI" else matcher.in_text("\\".join(values))

    def _pixel_findings(self, dataset, raw, path: str) -> Iterator[str]:
        tag = int(raw.tag)
        label = f"{path} {dataset_dictionary_keyword(tag)}"

        def read() -> bytes:
            return bytes(dataset[raw.tag].value or b"")

        if self.search_pixel_data:
            searched, where = read(), label
        else:
            length = raw.length if hasattr(raw, "length") else len(read())
            searched = bytes_beyond_image(dataset, tag, length, read)
            where = f"{label} (bytes beyond the image)"
        if searched:
            for kind in self.matcher.in_text(searched.decode("latin-1")):
                yield f"{where}: {kind}"


def dataset_dictionary_keyword(tag: int) -> str:
    return keyword_for_tag(tag) or ""


def find_identifiers(files: Sequence[Path], identifiers: Identifiers, *,
                     search_pixel_data: bool = False) -> list[str]:
    """Every place an identifier was found, as ``image N of M: <tag path> <keyword>: <kind>``.

    Of pixel data only the bytes that are not the image are searched (``pixel_data``);
    with ``search_pixel_data`` (DICOM_OPS_EGRESS_PIXEL_SEARCH) all of them are.
    """
    from pydicom import dcmread

    walk = _Walk(_Matcher(identifiers), search_pixel_data)
    findings = []
    total = len(files)
    for number, path in enumerate(files, start=1):
        where = f"image {number} of {total}"
        path = Path(path)
        findings += [f"{where}: file name: {kind}" for kind in walk.matcher.in_text(path.name)]
        dataset = dcmread(path, defer_size=4096, force=True)
        meta = getattr(dataset, "file_meta", None)
        if meta is not None:
            findings += [f"{where}: {found}" for found in walk.findings(meta, "")]
        findings += [f"{where}: {found}" for found in walk.findings(dataset, "")]
    return findings


def egress_check(files: Sequence[Path], identifiers: Identifiers, *,
                 search_pixel_data: bool = False) -> None:
    """Raise ``EgressViolation`` if any outgoing file holds an identifier of the patient."""
    findings = find_identifiers(files, identifiers, search_pixel_data=search_pixel_data)
    if findings:
        raise EgressViolation(findings)
