"""Is this RTSTRUCT the answer to our job? Checked on the de-identified file the DRAW
server returned, before anything is re-identified, written or sent.

The job's UID map is the only truth: an RTSTRUCT may reference the job's
de-identified study, series, frame of reference and images and nothing else.
Each job holds one patient, so "only this job's UIDs" means "only this patient".

Reasons name the problem and where it is, as a tag path such as
``(3006,0039)[0].(3006,0040)[2].(3006,0016)[0].(0008,1155) ReferencedSOPInstanceUID``.
They may show a de-identified UID; they never show a patient value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import dictionary_has_tag, dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID, RTStructureSetStorage

UID_KINDS = ("study", "series", "sop", "frame_of_reference", "other")

# UI elements that name a kind of thing (SOP class, transfer syntax, coding scheme,
# software), not an instance of this patient's data: they are neither checked nor mapped.
_NOT_INSTANCE_KEYWORDS = frozenset({
    "CodingSchemeUID", "ContextGroupExtensionCreatorUID", "ContextUID", "CreatorVersionUID",
    "InstanceCreatorUID", "MappingResourceUID", "PrivateInformationCreatorUID",
    "PertinentSOPClassesInSeries", "PertinentSOPClassesInStudy", "SOPClassesInStudy",
    "SOPClassesSupported", "HomeCommunityID", "RepositoryUniqueID", "RetrieveLocationUID",
})
# The RTSTRUCT's own identity: replaced by fresh UIDs on re-identification, so not a reference.
OWN_IDENTITY_KEYWORDS = ("SOPInstanceUID", "SeriesInstanceUID")


class RtstructRejected(Exception):
    """The RTSTRUCT must not be delivered; ``reason`` says why, without patient values.
    ``quarantined_path`` is where the file was kept, once it has been."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.quarantined_path: Path | None = None
        super().__init__(reason)


@dataclass(frozen=True)
class ExpectedUids:
    """The job's de-identified UIDs by kind: what its RTSTRUCT may reference."""

    studies: frozenset[str]
    series: frozenset[str]
    frames_of_reference: frozenset[str]
    images: frozenset[str]
    others: frozenset[str] = frozenset()

    @classmethod
    def from_uid_map(cls, uid_map: Mapping[str, tuple[str, str]]) -> ExpectedUids:
        """From a job's UID map (de-identified UID -> (original UID, kind))."""
        by_kind: dict[str, set[str]] = {kind: set() for kind in UID_KINDS}
        for deid_uid, (_original, kind) in uid_map.items():
            if kind not in by_kind:
                raise ValueError(f"UID map entry of unknown kind {kind!r}")
            by_kind[kind].add(deid_uid)
        return cls(studies=frozenset(by_kind["study"]), series=frozenset(by_kind["series"]),
                   frames_of_reference=frozenset(by_kind["frame_of_reference"]),
                   images=frozenset(by_kind["sop"]), others=frozenset(by_kind["other"]))

    @property
    def known(self) -> frozenset[str]:
        return self.studies | self.series | self.frames_of_reference | self.images | self.others


@dataclass(frozen=True)
class UidElement:
    """One instance-UID value found in a dataset, and where."""

    path: str  # "(3006,0010)[0].(3006,0024) ReferencedFrameOfReferenceUID"
    dataset: Dataset  # the dataset (or sequence item) holding it
    tag: BaseTag
    values: tuple[str, ...]  # usually one; more for multi-valued elements
    top_level: bool

    @property
    def keyword(self) -> str:
        return keyword_for_tag(self.tag) or "unknown"


def tag_text(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def refers_to_an_instance(tag: BaseTag) -> bool:
    """Whether a UI element names an instance (map it) rather than a class or scheme."""
    keyword = keyword_for_tag(tag)
    if not keyword:  # an element we do not know: treat as a reference (fail closed)
        return True
    return not (keyword.endswith(("ClassUID", "ClassUIDInFile"))
                or "TransferSyntaxUID" in keyword or keyword in _NOT_INSTANCE_KEYWORDS)


def element_vr(raw: DataElement | RawDataElement) -> str:
    """The VR of an element as read, without decoding it (implicit VR: from the dictionary)."""
    if raw.VR:
        return str(raw.VR)
    return dictionary_VR(raw.tag) if dictionary_has_tag(raw.tag) else "UN"


def instance_uid_elements(ds: Dataset, prefix: str = "") -> Iterator[UidElement]:
    """Every instance-UID element at every nesting level, public elements only.

    Only UI and SQ elements are decoded: everything else, contour data included,
    stays as read, so writing the dataset again reproduces those bytes exactly.
    """
    for raw in list(ds.elements()):
        tag = BaseTag(raw.tag)
        if tag.is_private or tag.group == 0x0002:
            continue
        vr = element_vr(raw)
        if vr == "SQ":
            for index, item in enumerate(ds[tag].value):
                yield from instance_uid_elements(item, f"{prefix}{tag_text(tag)}[{index}].")
        elif vr == "UI" and refers_to_an_instance(tag):
            element = ds[tag]
            values = element.value if element.VM > 1 else [element.value]
            values = tuple(str(v) for v in values if v not in (None, ""))
            if values:
                yield UidElement(path=f"{prefix}{tag_text(tag)} {keyword_for_tag(tag) or ''}"
                                 .rstrip(), dataset=ds, tag=tag, values=values,
                                 top_level=not prefix)


def is_own_identity(element: UidElement) -> bool:
    return element.top_level and element.keyword in OWN_IDENTITY_KEYWORDS


def validate_rtstruct(ds: Dataset, expected: ExpectedUids) -> None:
    """Raise ``RtstructRejected`` unless ``ds`` is an RT Structure Set that references
    only the expected study, series, frame of reference and images."""
    _check_is_rtstruct(ds)
    _check_kinds(ds, expected)
    for element in instance_uid_elements(ds):
        if is_own_identity(element):
            continue
        for value in element.values:
            if value not in expected.known:
                raise RtstructRejected(
                    f"RTSTRUCT references a UID that is not in this job's map at {element.path}: "
                    f"{value}")


def _check_is_rtstruct(ds: Dataset) -> None:
    sop_class = ds.get("SOPClassUID")
    if sop_class != RTStructureSetStorage:
        shown = UID(sop_class).name if sop_class else "missing"
        raise RtstructRejected(f"not an RT Structure Set: SOP Class UID (0008,0016) is {shown}")
    meta_class = getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID")
    if meta_class is not None and meta_class != RTStructureSetStorage:
        raise RtstructRejected("file meta Media Storage SOP Class UID (0002,0002) is "
                               f"{UID(meta_class).name}, not RT Structure Set Storage")
    modality = ds.get("Modality")
    if modality != "RTSTRUCT":
        raise RtstructRejected(f"Modality (0008,0060) is {modality or 'missing'}, not RTSTRUCT")
    if not UID(str(ds.get("SOPInstanceUID", ""))).is_valid:
        raise RtstructRejected("SOP Instance UID (0008,0018) is missing or not a valid UID")


def _require(value: object, allowed: frozenset[str], what: str, path: str) -> None:
    if value in (None, ""):
        raise RtstructRejected(f"RTSTRUCT has no {what} UID at {path}")
    if str(value) not in allowed:
        article = "an" if what[0] in "aeiou" else "a"
        raise RtstructRejected(f"RTSTRUCT references {article} {what} UID that is not this "
                               f"job's at {path}: {value}")


def _items(ds: Dataset, keyword: str) -> list[tuple[int, Dataset]]:
    return list(enumerate(ds.get(keyword) or []))


def _check_kinds(ds: Dataset, expected: ExpectedUids) -> None:
    """Each reference is of the right kind: the study is the job's study, the images are
    the job's images, and so on; an RTSTRUCT with nothing to reference is not useful."""
    _require(ds.get("StudyInstanceUID"), expected.studies, "study", "(0020,000D) StudyInstanceUID")
    if "FrameOfReferenceUID" in ds:
        _require(ds.FrameOfReferenceUID, expected.frames_of_reference, "frame of reference",
                 "(0020,0052) FrameOfReferenceUID")
    frames = _items(ds, "ReferencedFrameOfReferenceSequence")
    if not frames:
        raise RtstructRejected("RTSTRUCT has no Referenced Frame of Reference Sequence (3006,0010)")
    for f, frame in frames:
        at = f"(3006,0010)[{f}]"
        _require(frame.get("FrameOfReferenceUID"), expected.frames_of_reference,
                 "frame of reference", f"{at}.(0020,0052) FrameOfReferenceUID")
        for s, study in _items(frame, "RTReferencedStudySequence"):
            at_study = f"{at}.(3006,0012)[{s}]"
            _require(study.get("ReferencedSOPInstanceUID"), expected.studies, "study",
                     f"{at_study}.(0008,1155) ReferencedSOPInstanceUID")
            for r, series in _items(study, "RTReferencedSeriesSequence"):
                at_series = f"{at_study}.(3006,0014)[{r}]"
                _require(series.get("SeriesInstanceUID"), expected.series, "series",
                         f"{at_series}.(0020,000E) SeriesInstanceUID")
                for i, image in _items(series, "ContourImageSequence"):
                    _require(image.get("ReferencedSOPInstanceUID"), expected.images, "image",
                             f"{at_series}.(3006,0016)[{i}].(0008,1155) ReferencedSOPInstanceUID")
    rois = _items(ds, "StructureSetROISequence")
    if not rois:
        raise RtstructRejected("RTSTRUCT has no ROI: Structure Set ROI Sequence (3006,0020) "
                               "is missing or empty")
    for r, roi in rois:
        _require(roi.get("ReferencedFrameOfReferenceUID"), expected.frames_of_reference,
                 "frame of reference", f"(3006,0020)[{r}].(3006,0024) ReferencedFrameOfReferenceUID")
    for r, roi_contour in _items(ds, "ROIContourSequence"):
        for c, contour in _items(roi_contour, "ContourSequence"):
            for i, image in _items(contour, "ContourImageSequence"):
                _require(image.get("ReferencedSOPInstanceUID"), expected.images, "image",
                         f"(3006,0039)[{r}].(3006,0040)[{c}].(3006,0016)[{i}].(0008,1155) "
                         "ReferencedSOPInstanceUID")
