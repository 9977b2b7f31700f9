"""Keyword, name and VR of standard tags, from pydicom's data dictionary.

pydicom takes a fifth of a second to import. The engine needs only the handful of
tags a series actually holds, so this lookup imports pydicom on the first miss only,
and what it learned can be saved with the compiled recipe (``recipe.py``): a warm
``dicom-ops deidentify`` never imports pydicom at all.
"""

from __future__ import annotations

import os
import sys

# Ambiguous dictionary VRs, resolved the way they almost always are in CT and MR.
_AMBIGUOUS_VR = {"US or SS": "US", "US or OW": "US", "US or SS or OW": "US", "OB or OW": "OW"}

TagInfo = tuple[str, str, str]  # keyword, name, VR ("" keyword and name when unknown)


def dictionary_fingerprint() -> str:
    """Changes when the installed pydicom's data dictionary changes (nothing imported)."""
    for entry in sys.path:
        try:
            stat = os.stat(os.path.join(entry or ".", "pydicom", "_dicom_dict.py"))
        except OSError:
            continue
        return f"{stat.st_size}-{stat.st_mtime_ns}"
    return "no-pydicom"


def lookup_tag(tag: int) -> TagInfo:
    """Ask pydicom (imported here, on demand) what ``tag`` is."""
    from pydicom.datadict import dictionary_VR
    from pydicom.dataelem import DataElement

    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        vr = "UL" if tag & 0xFFFF == 0 else "UN"
    vr = _AMBIGUOUS_VR.get(vr, vr.split(" ")[0])
    element = DataElement(tag, vr, None)
    return element.keyword, element.name, vr


def tag_for_keyword(keyword: str) -> int | None:
    """The tag of a dictionary keyword, or None."""
    from pydicom.datadict import tag_for_keyword as pydicom_tag_for_keyword

    return pydicom_tag_for_keyword(keyword)


class TagDictionary:
    """Remembers every tag it was asked about; ``known`` can be saved and given back."""

    def __init__(self, known: dict[int, TagInfo] | None = None) -> None:
        self.known: dict[int, TagInfo] = dict(known or {})
        self.learned = 0  # tags looked up in pydicom since creation

    def info(self, tag: int) -> TagInfo:
        found = self.known.get(tag)
        if found is None:
            if tag >> 16 & 1:  # private: removed before any decision, VR unknowable here
                return "", "Private tag data", "UN"
            found = self.known[tag] = lookup_tag(tag)
            self.learned += 1
        return found

    def vr(self, tag: int) -> bytes:
        return self.info(tag)[2].encode()
