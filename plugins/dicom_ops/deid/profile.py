"""What a recipe does to each attribute of PS3.15 Table E.1-1, and which options it declares.

Table E.1-1 (Basic Application Level Confidentiality Profile) gives an action per
attribute: D (dummy value), Z (empty or dummy), X (remove), K (keep), C (clean),
U (new UID), and combinations (X/Z: remove unless the IOD needs it empty...). An
option (PS3.15 E.3) may ask for another action on some attributes. dicom-ops keeps the
table's rows and its own outcome per row in one list, ``include/deid/profile.csv``
(tag, keyword, table action, our action, why), written by
``python -m dicom_ops.deid.profile`` from the shipped recipe; a test checks the file
against the recipe and against an independent transcription of the standard.

Our action per row is what the compiled recipe does to that attribute at the top level
(``Recipe.program``), so it cannot drift from the recipe. It is accepted when:

- it is one of the table's actions (``X/Z`` allows X and Z); D also satisfies Z (Z
  allows a dummy value);
- it is X where the table asks for a dummy or empty value (D, Z): the attribute does not
  leave at all ("stricter"); which attributes the objects we send must carry is the
  IOD's business, checked by dciodvfy, not the confidentiality profile's;
- it is U for a UID the table removes or replaces by a dummy (a new keyed UID tells
  nothing about the original: "new UID");
- an option we declare allows it (the option's code in the ``why`` column): 113107
  Retain Longitudinal Temporal Information with Modified Dates (dates and date-times
  shifted, C; a time of day alone is kept, K, because dates move by whole days), 113108
  Retain Patient Characteristics (K on the option's attributes). Device, institution
  and UID options are not used: the recipe removes those attributes and maps every UID.

The declared codes (``declared_codes``): 113100 and the options the recipe's outcomes
need, written into every output as DeidentificationMethodCodeSequence (0012,0064). A
recipe that does something to a listed attribute that no rule accepts declares no code
at all: it does not conform to the profile, and must not say so.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable

from dicom_ops.deid.defined_terms import CID_7050
from dicom_ops.deid.recipe import (
    ADD,
    BLANK,
    DROP,
    FUNC,
    JITTER,
    LITERAL,
    META,
    PASS,
    REMOVE,
    REPLACE,
    TOP,
    UNTOUCHED,
    VAR,
)
from dicom_ops.deid.uids import is_instance_uid

PROFILE_CSV = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir,
                           "include", "deid", "profile.csv")
COLUMNS = ("tag", "keyword", "table_action", "our_action", "why")

BASIC_PROFILE = "113100"
MODIFIED_DATES = "113107"
PATIENT_CHARACTERISTICS = "113108"
STRICTER, NEW_UID = "stricter", "new UID"

# Attributes the Retain Patient Characteristics option may keep (PS3.15 E.3.5).
PATIENT_CHARACTERISTIC_TAGS = frozenset({
    0x00102160,  # EthnicGroup
    0x00101010,  # PatientAge
    0x00100040,  # PatientSex
    0x00102203,  # PatientSexNeutered
    0x00101020,  # PatientSize
    0x00101030,  # PatientWeight
    0x001021C0,  # PregnancyStatus
    0x00720028,  # SelectorASValue
    0x001021A0,  # SmokingStatus
})
# Representative tags of the table's rows that stand for a range.
_RANGE_ROWS = {"(50XX,XXXX)": 0x50003000, "(60XX,3000)": 0x60003000,
               "(60XX,4000)": 0x60004000, "(GGGG,EEEE) WHERE GGGG IS ODD": 0x00091010}
_DATE_VRS = ("DA", "DT", "TM")


def tag_of(text: str) -> int:
    """The tag a row of the table stands for (a representative one for ranges)."""
    if text in _RANGE_ROWS:
        return _RANGE_ROWS[text]
    return int(text[1:5] + text[6:10], 16)


def our_action(recipe, tag: int) -> str:
    """What the recipe does to ``tag`` at the top level, as a Table E.1-1 code."""
    if tag >> 16 & 1:
        return "X"  # private tags are removed before the recipe runs
    keyword, _, vr = recipe.tags.info(tag)
    kind, steps = recipe.program(META if tag >> 16 == 2 else TOP, tag, vr.encode())
    if kind == DROP:
        return "X"
    if kind in (UNTOUCHED, PASS):
        return "K"
    state = "K"
    for action, spec in steps:
        if action == ADD:
            state = _value_code(spec, tag)
        elif state == "X":
            continue
        elif action == REMOVE:
            state = "X"
        elif action == BLANK:
            state = "Z"
        elif action == REPLACE:
            state = _value_code(spec, tag)
        elif action == JITTER and vr in ("DA", "DT") and state == "K":
            state = "C"
    return state


def _value_code(spec, tag: int) -> str:
    kind, value = spec
    if kind == FUNC:  # func:deid_uid
        return "U" if is_instance_uid(tag, "2.25.1") else "K"
    if kind == VAR:
        return "Z" if value == "empty" else "D"
    if kind == LITERAL:
        return "D" if value else "Z"
    return "D"


def why(table_action: str, ours: str, tag: int, vr: str) -> str | None:
    """"" when ``ours`` is what the table says, the reason or option code when another
    rule accepts it, None when nothing does."""
    allowed = set(table_action.replace("*", "").split("/"))
    if ours in allowed or (ours == "D" and "Z" in allowed):
        return ""
    if ours == "X" and allowed & {"D", "Z"}:
        return STRICTER
    if ours == "U" and vr == "UI" and allowed & {"X", "D"}:
        return NEW_UID
    if vr in _DATE_VRS and (ours == "C" or (ours == "K" and vr == "TM")):
        return MODIFIED_DATES
    if ours == "K" and tag in PATIENT_CHARACTERISTIC_TAGS:
        return PATIENT_CHARACTERISTICS
    return None


def read_table(path: str = PROFILE_CSV) -> list[dict[str, str]]:
    """The rows of ``profile.csv`` (the standard's tag and action, and ours)."""
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(line for line in stream if not line.startswith("#")))


def assess(recipe, rows: Iterable[dict[str, str]]) -> list[dict[str, str | None]]:
    """Our action and its justification for each row of the table (``why`` None: refused)."""
    assessed = []
    for row in rows:
        tag = tag_of(row["tag"])
        vr = recipe.tags.info(tag)[2] if not tag >> 16 & 1 else "UN"
        ours = our_action(recipe, tag)
        assessed.append({**row, "our_action": ours,
                         "why": why(row["table_action"], ours, tag, vr)})
    return assessed


def declared_codes(recipe, rows: Iterable[dict[str, str]] | None = None) -> tuple[str, ...]:
    """CID 7050 codes the recipe's outputs may declare: () when it does not conform."""
    assessed = assess(recipe, read_table() if rows is None else rows)
    if any(row["why"] is None for row in assessed):
        return ()
    options = {row["why"] for row in assessed} & set(CID_7050)
    return (BASIC_PROFILE, *sorted(options))


def render(recipe, rows: Iterable[dict[str, str]]) -> str:
    """``profile.csv`` for ``recipe``: the table's columns as given, ours recomputed."""
    import io

    out = io.StringIO()
    out.write(HEADER)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in assess(recipe, rows):
        writer.writerow([row["tag"], row["keyword"], row["table_action"], row["our_action"],
                         "REFUSED" if row["why"] is None else row["why"]])
    return out.getvalue()


HEADER = """\
# What dicom-ops' recipe (include/deid/deid.dicom) does to every attribute of DICOM
# PS3.15 Table E.1-1 (edition 2024b), the Basic Application Level Confidentiality
# Profile. tag and table_action are the standard's (ranges and private tags as it writes
# them); our_action is what the recipe does at the top level (D dummy, Z empty, X
# removed, K kept, C cleaned: dates shifted, U new UID); why is empty when ours is the
# table's, "stricter" when removed instead of a dummy or empty value, "new UID" when a
# UID the table removes is replaced instead, or the CID 7050 code of the declared option
# that allows it (113107 modified dates, 113108 patient characteristics). Regenerate after changing the recipe: python -m dicom_ops.deid.profile
"""


def main() -> None:
    from dicom_ops.deid.recipe import load_recipe

    recipe_path = os.path.join(os.path.dirname(PROFILE_CSV), "deid.dicom")
    text = render(load_recipe(recipe_path), read_table())
    with open(PROFILE_CSV, "w", encoding="utf-8") as stream:
        stream.write(text)


if __name__ == "__main__":
    main()
