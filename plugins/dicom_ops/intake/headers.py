"""Read the few header fields intake needs, without decoding the rest of a dataset.

Parsing stops after (0020,000E) Series Instance UID, so pixel data and most of the
header are never touched, and only the elements intake keeps are turned into a
``Dataset`` (building all of them was a third of the listener's time per instance).
UIDs are checked here: an instance whose Study, Series or SOP Instance UID is missing
or not a valid UID is refused with a reason that names the attribute but never its
value.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info as read_file_meta_info
from pydicom.filereader import data_element_generator, read_preamble
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from dicom_ops.uids import INFLATED_SYNTAX, is_valid_uid

_LAST_TAG_NEEDED = 0x0020000E
_UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
# SpecificCharacterSet, SOPInstanceUID, Modality, SeriesDescription, Study/SeriesInstanceUID
_KEPT_TAGS = frozenset({0x00080005, 0x00080018, 0x00080060, 0x0008103E, 0x0020000D,
                        0x0020000E})


class UnusableInstance(ValueError):
    """An instance intake cannot file; ``reason`` is safe to log (no PHI)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class NotDicom(Exception):
    """The file is not a DICOM Part 10 file."""


# C-STORE failure statuses in the 0xCxxx "cannot understand" range, one per reason,
# so the sender's log tells them apart.
STATUS_UNPARSABLE = 0xC001
STATUS_MISSING_UID = 0xC002
STATUS_INVALID_UID = 0xC003


@dataclass(frozen=True)
class InstanceHeader:
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str | None
    description: str | None


def _stop_after_series_uid(tag, _vr, _length) -> bool:
    return tag > _LAST_TAG_NEEDED


def header_from_dataset_bytes(raw: bytes | memoryview, transfer_syntax: str) -> InstanceHeader:
    """The header of a dataset as encoded on the wire (no file meta) in ``transfer_syntax``."""
    if transfer_syntax in INFLATED_SYNTAX:
        try:
            raw = zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw)
        except zlib.error as exc:
            raise UnusableInstance("cannot inflate the deflated dataset",
                                   STATUS_UNPARSABLE) from exc
    implicit = transfer_syntax == ImplicitVRLittleEndian
    little = transfer_syntax != ExplicitVRBigEndian
    try:
        dataset = _read_header(BytesIO(raw), implicit, little)
    except Exception as exc:  # pydicom raises many kinds on garbage
        raise UnusableInstance(f"cannot parse the dataset ({type(exc).__name__})",
                               STATUS_UNPARSABLE) from exc
    return _header(dataset)


def _read_header(stream, implicit: bool, little: bool) -> Dataset | None:
    """The kept elements up to (0020,000E), undecoded until asked for (``None``: the
    stream held no element at all, i.e. garbage)."""
    kept, seen = {}, False
    for element in data_element_generator(stream, implicit, little,
                                          stop_when=_stop_after_series_uid):
        seen = True
        if element.tag in _KEPT_TAGS:
            kept[element.tag] = element
    return Dataset(kept) if seen else None


def header_from_file(path: Path) -> InstanceHeader:
    """The header of a DICOM Part 10 file (``NotDicom`` when it has no DICM prefix)."""
    with open(path, "rb") as handle:
        try:
            read_preamble(handle, force=False)
        except Exception as exc:
            raise NotDicom from exc
        try:
            meta = read_file_meta_info(handle)
            transfer_syntax = str(meta.get("TransferSyntaxUID", ""))
            if transfer_syntax in INFLATED_SYNTAX:
                return header_from_dataset_bytes(handle.read(), transfer_syntax)
            implicit = transfer_syntax == ImplicitVRLittleEndian
            little = transfer_syntax != ExplicitVRBigEndian
            dataset = _read_header(handle, implicit, little)
        except UnusableInstance:
            raise
        except Exception as exc:
            raise UnusableInstance(f"cannot parse the file ({type(exc).__name__})",
                                   STATUS_UNPARSABLE) from exc
    return _header(dataset)


def _header(dataset: Dataset | None) -> InstanceHeader:
    if dataset is None:  # garbage: not one element before (0020,000E)
        raise UnusableInstance("cannot parse the dataset (no DICOM elements)", STATUS_UNPARSABLE)
    uids = {}
    for keyword in _UID_KEYWORDS:
        try:
            value = dataset.get(keyword)
        except Exception as exc:
            raise UnusableInstance(f"cannot read {keyword} ({type(exc).__name__})",
                                   STATUS_UNPARSABLE) from exc
        if value is None or str(value).strip() == "":
            raise UnusableInstance(f"{keyword} is missing", STATUS_MISSING_UID)
        text = str(value).strip()
        if not is_valid_uid(text):
            raise UnusableInstance(f"{keyword} is not a valid DICOM UID", STATUS_INVALID_UID)
        uids[keyword] = text
    return InstanceHeader(
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        sop_uid=uids["SOPInstanceUID"],
        modality=_text(dataset, "Modality", 16),
        description=_text(dataset, "SeriesDescription", 256),
    )


def _text(dataset: Dataset, keyword: str, limit: int) -> str | None:
    try:
        value = dataset.get(keyword)
    except Exception:
        return None
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] or None
