"""What a delivered RTSTRUCT must hold to be a conformant RT Structure Set (PS3.3 A.19,
checked by dicom3tools' ``dciodvfy``), whatever the DRAW server sent.

The one home of the IOD's Type 1 and Type 2 attributes as we deliver them: at the top
level per module, and in the items of the structure set's sequences. Re-identification
uses it to

- add the Frame of Reference module (a server's RTSTRUCT may lack it: the emulator's
  did, a real server's may too): the frame the contours are drawn in, and the CT's
  PositionReferenceIndicator (Type 2: empty when the CT has none or cannot be read);
- fill every missing Type 2 attribute as empty (we never invent a value);
- tell which attributes are retired (group lengths included): re-identification drops
  them at every depth, as they are not part of the IOD and a TPS or validator flags them;
- refuse a file that lacks a Type 1 attribute (or has it empty): it cannot be repaired
  without inventing a value, so it is not delivered, with a reason naming the place.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydicom.datadict import dictionary_is_retired, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from dicom_ops.delivery.validation import RtstructRejected, element_vr, tag_text

# Top-level attributes by module of the RT Structure Set IOD: (Type 1, Type 2).
# Type 3 and conditional (1C/2C) attributes are not listed: absent is conformant.
MODULES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Patient": ((), ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")),
    "General Study": (("StudyInstanceUID",), ("StudyDate", "StudyTime", "ReferringPhysicianName",
                                              "StudyID", "AccessionNumber")),
    "RT Series": (("Modality", "SeriesInstanceUID"), ("SeriesNumber", "OperatorsName")),
    "General Equipment": ((), ("Manufacturer",)),
    "Frame of Reference": (("FrameOfReferenceUID",), ("PositionReferenceIndicator",)),
    "Structure Set": (("StructureSetLabel", "StructureSetROISequence"),
                      ("StructureSetDate", "StructureSetTime")),
    "ROI Contour": (("ROIContourSequence",), ()),
    "RT ROI Observations": (("RTROIObservationsSequence",), ()),
    "SOP Common": (("SOPClassUID", "SOPInstanceUID"), ()),
}
# The same for the items of each sequence, wherever the sequence occurs (they occur
# once each in this IOD): (Type 1, Type 2).
ITEMS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ReferencedFrameOfReferenceSequence": (("FrameOfReferenceUID",), ()),
    "RTReferencedStudySequence": (("ReferencedSOPClassUID", "ReferencedSOPInstanceUID",
                                   "RTReferencedSeriesSequence"), ()),
    "RTReferencedSeriesSequence": (("SeriesInstanceUID", "ContourImageSequence"), ()),
    "ContourImageSequence": (("ReferencedSOPClassUID", "ReferencedSOPInstanceUID"), ()),
    "StructureSetROISequence": (("ROINumber", "ReferencedFrameOfReferenceUID"),
                                ("ROIName", "ROIGenerationAlgorithm")),
    "ROIContourSequence": (("ReferencedROINumber",), ()),
    "ContourSequence": (("ContourGeometricType", "NumberOfContourPoints", "ContourData"), ()),
    "RTROIObservationsSequence": (("ObservationNumber", "ReferencedROINumber"),
                                  ("RTROIInterpretedType", "ROIInterpreter")),
}


def type2_of(*modules: str) -> tuple[str, ...]:
    """The Type 2 attributes of the named modules, in table order."""
    return tuple(keyword for module in modules for keyword in MODULES[module][1])


def is_retired(tag: BaseTag) -> bool:
    """Retired in the data dictionary, or a group length outside the file meta (group
    lengths are retired, PS3.5 7.2). Tags the dictionary does not know are not retired."""
    if tag.element == 0 and tag.group != 0x0002:
        return True
    try:
        return bool(dictionary_is_retired(tag))
    except KeyError:
        return False


def add_frame_of_reference_module(ds: Dataset, position_reference_indicators: Mapping[str, str]
                                  ) -> None:
    """FrameOfReferenceUID: the one the server gave, else the frame the ROIs are drawn in
    (validation made sure every ROI names one of this job's frames). PositionReferenceIndicator:
    the CT's for that frame when known, else what the server gave, else empty (Type 2)."""
    if not ds.get("FrameOfReferenceUID"):
        rois = ds.get("StructureSetROISequence") or []
        frames = [str(roi.ReferencedFrameOfReferenceUID) for roi in rois
                  if roi.get("ReferencedFrameOfReferenceUID")]
        if not frames:
            raise RtstructRejected("RTSTRUCT names no frame of reference for its ROIs: "
                                   "(3006,0020)[0].(3006,0024) ReferencedFrameOfReferenceUID")
        ds.FrameOfReferenceUID = frames[0]
    frame = str(ds.FrameOfReferenceUID)
    if frame in position_reference_indicators:
        ds.PositionReferenceIndicator = position_reference_indicators[frame]
    elif "PositionReferenceIndicator" not in ds:
        ds.PositionReferenceIndicator = ""


def fill_type2(ds: Dataset) -> None:
    """Every Type 2 attribute of the table present, empty where nothing gave it a value."""
    for _type1, type2 in MODULES.values():
        _fill(ds, type2)
    for keyword, (_type1, type2) in ITEMS.items():
        for item in _items_anywhere(ds, keyword):
            _fill(item, type2)


def check_type1(ds: Dataset) -> None:
    """Raise ``RtstructRejected`` naming the first Type 1 attribute missing or empty."""
    for module, (type1, _type2) in MODULES.items():
        for keyword in type1:
            if _is_empty(ds, keyword):
                raise RtstructRejected(f"RTSTRUCT lacks {_named(keyword)}, Type 1 in the "
                                       f"{module} module: not a conformant RT Structure Set")
    for sequence, (type1, _type2) in ITEMS.items():
        for path, item in _items_with_paths(ds, sequence):
            for keyword in type1:
                if _is_empty(item, keyword):
                    raise RtstructRejected(f"RTSTRUCT lacks {path}.{_named(keyword)}, Type 1: "
                                           "not a conformant RT Structure Set")


def _fill(ds: Dataset, keywords: tuple[str, ...]) -> None:
    for keyword in keywords:
        if keyword not in ds:
            setattr(ds, keyword, "")


def _is_empty(ds: Dataset, keyword: str) -> bool:
    value = ds.get(keyword)
    return value is None or value == "" or (isinstance(value, list) and not value)


def _named(keyword: str) -> str:
    return f"{tag_text(Tag(tag_for_keyword(keyword)))} {keyword}"


def _items_anywhere(ds: Dataset, sequence: str) -> list[Dataset]:
    return [item for _path, item in _items_with_paths(ds, sequence)]


def _items_with_paths(ds: Dataset, sequence: str, prefix: str = "") -> list[tuple[str, Dataset]]:
    """Items of ``sequence`` at any depth, with their tag path, as in validation's reasons."""
    found: list[tuple[str, Dataset]] = []
    for raw in list(ds.elements()):
        tag = BaseTag(raw.tag)
        if tag.is_private or element_vr(raw) != "SQ":
            continue
        element = ds[tag]
        for index, item in enumerate(element.value):
            path = f"{prefix}{tag_text(tag)}[{index}]"
            if element.keyword == sequence:
                found.append((path, item))
            found.extend(_items_with_paths(item, sequence, f"{path}."))
    return found
