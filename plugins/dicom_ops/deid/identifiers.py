"""The original patient's identifiers, as found in the series before de-identification.

The engine collects them while it reads (every UID at every level, and the identity
attributes of group 0010 and the accession number); the egress check looks for them in
everything that is about to leave. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# Tags whose values identify the patient, and what they are called in messages.
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
OTHER_PATIENT_IDS_SEQUENCE = 0x00101002
NAME_TAGS = frozenset({
    0x00100010,  # PatientName
    0x00101001,  # OtherPatientNames
    0x00101005,  # PatientBirthName
    0x00101060,  # PatientMotherBirthName
})
ID_TAGS = {
    0x00100020: "patient ID",  # PatientID (in OtherPatientIDsSequence: an other ID)
    0x00101000: "other patient ID",  # OtherPatientIDs
    0x00080050: "accession number",  # AccessionNumber
    0x00100030: "birth date",  # PatientBirthDate
    0x00101040: "patient address",  # PatientAddress
    0x00102154: "patient telephone number",  # PatientTelephoneNumbers
}
IDENTITY_TAGS = NAME_TAGS | frozenset(ID_TAGS)
PATIENT_ADDRESS = 0x00101040
SPECIFIC_CHARACTER_SET = 0x00080005

MIN_LENGTH = 3  # shorter name parts and IDs would match everywhere; they are not checked
_NAME_SEPARATORS = " \t-'.,"

# DICOM character sets (PS3.3 C.12.1.1.2) and the Python codecs that read them.
_CODECS = {
    "": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3", "ISO_IR 110": "iso8859_4", "ISO_IR 144": "iso8859_5",
    "ISO_IR 127": "iso8859_6", "ISO_IR 126": "iso8859_7", "ISO_IR 138": "iso8859_8",
    "ISO_IR 148": "iso8859_9", "ISO_IR 203": "iso8859_15", "ISO_IR 13": "shift_jis",
    "ISO_IR 166": "tis_620", "ISO_IR 192": "utf_8", "GB18030": "gb18030", "GBK": "gbk",
}


def decode_text(raw: bytes, charset: str = "", vr: str = "LO") -> str:
    """Text of a value in the dataset's character set, without padding.

    Single-byte sets, UTF-8 and the Chinese sets are decoded here; ISO 2022 code
    extensions (escape sequences) are left to pydicom, imported only for them.
    """
    charset = charset.strip()
    codec = _CODECS.get(charset)
    if codec is None:
        from pydicom.charset import convert_encodings, decode_bytes

        encodings = convert_encodings([part.strip() for part in charset.split("\\")])
        delimiters = {ord("^"), ord("=")} if vr == "PN" else set()
        text = decode_bytes(raw, encodings, delimiters)
    else:
        text = raw.decode(codec, "replace")
    return text.strip(" \0")


def _min_length(name: str) -> int:
    """Three letters in Latin scripts; two characters where one names a syllable (CJK...)."""
    return MIN_LENGTH if all(ord(c) <= 0x24F for c in name) else 2


def name_parts(person_name: str) -> set[str]:
    """Family, given and middle names of a PN value (every group), and their words."""
    parts: set[str] = set()
    for value in person_name.split("\\"):
        for group in value.split("="):
            for component in group.split("^")[:3]:  # prefix and suffix are not identifying
                component = component.strip()
                words = "".join(" " if c in _NAME_SEPARATORS else c for c in component).split()
                candidates = {component, *words}
                parts.update(c for c in candidates if len(c) >= _min_length(c))
    return parts


_KINDS = ("patient name part", "patient ID", "other patient ID", "birth date",
          "accession number", "patient address", "patient telephone number", "original UID")
_FIELDS = ("name_parts", "patient_ids", "other_ids", "birth_dates", "accession_numbers",
           "addresses", "phone_numbers", "uids")


class Identifiers:
    """What must never leave: sets of text values (case as found), by kind."""

    __slots__ = _FIELDS

    def __init__(self, name_parts: Iterable[str] = (), patient_ids: Iterable[str] = (),
                 other_ids: Iterable[str] = (), birth_dates: Iterable[str] = (),
                 accession_numbers: Iterable[str] = (), addresses: Iterable[str] = (),
                 phone_numbers: Iterable[str] = (), uids: Iterable[str] = ()) -> None:
        self.name_parts = frozenset(name_parts)
        self.patient_ids = frozenset(patient_ids)
        self.other_ids = frozenset(other_ids)
        self.birth_dates = frozenset(birth_dates)
        self.accession_numbers = frozenset(accession_numbers)
        self.addresses = frozenset(addresses)
        self.phone_numbers = frozenset(phone_numbers)
        self.uids = frozenset(uids)

    def __repr__(self) -> str:  # counts only: the values are PHI
        counts = ", ".join(f"{kind}={len(values)}" for kind, values in self.by_kind())
        return f"Identifiers({counts})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identifiers) and all(
            getattr(self, name) == getattr(other, name) for name in _FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def by_kind(self) -> Iterator[tuple[str, frozenset[str]]]:
        """(kind as named in messages, values) for every kind."""
        for kind, name in zip(_KINDS, _FIELDS, strict=True):
            yield kind, getattr(self, name)

    def __or__(self, other: Identifiers) -> Identifiers:
        return Identifiers(*(getattr(self, name) | getattr(other, name) for name in _FIELDS))


class IdentifierCollector:
    """Accumulates identifiers from decoded values, one file after another."""

    def __init__(self) -> None:
        self.sets: dict[str, set[str]] = {name: set() for name in _FIELDS}
        self.uids = self.sets["uids"]

    def add(self, tag: int, text: str, parent: int) -> None:
        if tag in NAME_TAGS:
            self.sets["name_parts"].update(name_parts(text))
            return
        kind = ID_TAGS[tag]
        if tag == PATIENT_ID and parent == OTHER_PATIENT_IDS_SEQUENCE:
            kind = "other patient ID"
        values = {text} if tag == PATIENT_ADDRESS else {v.strip() for v in text.split("\\")}
        self.sets[_FIELDS[_KINDS.index(kind)]].update(
            v for v in values if len(v) >= MIN_LENGTH)

    def freeze(self) -> Identifiers:
        return Identifiers(*(self.sets[name] for name in _FIELDS))
