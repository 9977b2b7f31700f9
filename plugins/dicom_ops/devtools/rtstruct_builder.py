"""RT Structure Set: build one from images and contours, and read its references back.

``build_rtstruct`` is pure (datasets and arrays in, a dataset out): the DRAW
emulator uses it for its results and the tests of re-identification use it to
make RTSTRUCTs that point wherever they need. The readers give validation and
tests the UIDs a structure set references and its contours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import RTStructureSetStorage

from dicom_ops.delivery.part10 import rtstruct_file_meta
from dicom_ops.uids import digest_int, uuid_uid

# The conventional class UID of RTReferencedStudySequence items (Detached Study Management).
STUDY_REFERENCE_CLASS_UID = "1.2.840.10008.3.1.2.3.1"
MANUFACTURER = "dicom-ops"
_PALETTE = ((0, 255, 0), (255, 0, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255),
            (255, 0, 255), (255, 128, 0), (128, 0, 255), (0, 128, 128), (128, 128, 0))
_PATIENT_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
_STUDY_ATTRIBUTES = ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                     "AccessionNumber")


@dataclass(frozen=True)
class RoiContours:
    """One structure: its number, its name and its closed planar polygons per image.

    ``contours`` maps a referenced image SOPInstanceUID to polygons, each an
    (N, 3) array of points in patient coordinates (mm), implicitly closed.
    """

    number: int
    name: str
    contours: Mapping[str, Sequence[np.ndarray]]


def build_rtstruct(
    images: Sequence[Dataset],
    rois: Sequence[RoiContours],
    *,
    sop_instance_uid: str,
    label: str = "AUTOSEG",
    now: datetime | None = None,
    frame_of_reference_module: bool = True,
) -> Dataset:
    """An RT Structure Set Storage dataset (with file meta) for ``rois`` on ``images``.

    Patient and study come from the images; the structure set references the
    frame of reference, study, every series and every image given; each contour
    references its image. ROIs without contours are kept, named, with no
    ContourSequence. The result is a conformant RT Structure Set (dciodvfy finds no
    error); ``frame_of_reference_module=False`` leaves out the Frame of Reference
    module, as some servers do. Raises ValueError for inputs that would make a wrong file.
    """
    if not images:
        raise ValueError("an RTSTRUCT needs at least one referenced image")
    first = images[0]
    frame_uid = _single(images, "FrameOfReferenceUID")
    study_uid = _single(images, "StudyInstanceUID")
    image_classes = {str(ds.SOPInstanceUID): str(ds.SOPClassUID) for ds in images}
    _check_rois(rois, image_classes)
    now = now or datetime.now()

    ds = Dataset()
    ds.file_meta = rtstruct_file_meta(sop_instance_uid)
    if "SpecificCharacterSet" in first:
        ds.SpecificCharacterSet = first.SpecificCharacterSet
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = sop_instance_uid
    for keyword in _PATIENT_ATTRIBUTES + _STUDY_ATTRIBUTES:
        setattr(ds, keyword, first.get(keyword, ""))
    if "StudyDescription" in first:
        ds.StudyDescription = first.StudyDescription
    ds.StudyInstanceUID = study_uid
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = _derived_uid("series", sop_instance_uid)
    if frame_of_reference_module:
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = first.get("PositionReferenceIndicator", "")
    ds.SeriesNumber = 1
    ds.SeriesDescription = label
    ds.OperatorsName = ""
    ds.Manufacturer = MANUFACTURER
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label[:64]
    ds.StructureSetDate = now.strftime("%Y%m%d")
    ds.StructureSetTime = now.strftime("%H%M%S")
    ds.ReferencedFrameOfReferenceSequence = DicomSequence(
        [_frame_of_reference_item(images, frame_uid, study_uid)])
    ds.StructureSetROISequence = DicomSequence(
        [_structure_set_roi(roi, frame_uid) for roi in rois])
    ds.ROIContourSequence = DicomSequence(
        [_roi_contour(roi, index, image_classes) for index, roi in enumerate(rois)])
    ds.RTROIObservationsSequence = DicomSequence([_observation(roi) for roi in rois])
    return ds


# --- readers ----------------------------------------------------------------------------


def referenced_uids(rtstruct: Dataset) -> dict[str, set[str]]:
    """Every UID an RTSTRUCT points at, by kind.

    Keys: ``frame_of_reference`` (from the referenced frames and every ROI),
    ``study``, ``series``, ``images`` (all image SOP instances the structure
    set lists or a contour references) and ``contour_images`` (those that
    contours reference).
    """
    found: dict[str, set[str]] = {"frame_of_reference": set(), "study": set(), "series": set(),
                                  "images": set(), "contour_images": set()}
    for frame in rtstruct.get("ReferencedFrameOfReferenceSequence", []):
        found["frame_of_reference"].add(str(frame.FrameOfReferenceUID))
        for study in frame.get("RTReferencedStudySequence", []):
            found["study"].add(str(study.ReferencedSOPInstanceUID))
            for series in study.get("RTReferencedSeriesSequence", []):
                found["series"].add(str(series.SeriesInstanceUID))
                for image in series.get("ContourImageSequence", []):
                    found["images"].add(str(image.ReferencedSOPInstanceUID))
    for roi in rtstruct.get("StructureSetROISequence", []):
        if "ReferencedFrameOfReferenceUID" in roi:
            found["frame_of_reference"].add(str(roi.ReferencedFrameOfReferenceUID))
    for roi_contour in rtstruct.get("ROIContourSequence", []):
        for contour in roi_contour.get("ContourSequence", []):
            for image in contour.get("ContourImageSequence", []):
                found["contour_images"].add(str(image.ReferencedSOPInstanceUID))
    found["images"] |= found["contour_images"]
    return found


def read_rois(rtstruct: Dataset) -> list[RoiContours]:
    """The structures of an RTSTRUCT, the inverse of ``build_rtstruct``'s ``rois``."""
    names = {int(item.ROINumber): str(item.ROIName)
             for item in rtstruct.get("StructureSetROISequence", [])}
    contours: dict[int, dict[str, list[np.ndarray]]] = {number: {} for number in names}
    for roi_contour in rtstruct.get("ROIContourSequence", []):
        per_image = contours.setdefault(int(roi_contour.ReferencedROINumber), {})
        for contour in roi_contour.get("ContourSequence", []):
            points = np.array([float(v) for v in contour.ContourData]).reshape(-1, 3)
            images = contour.get("ContourImageSequence", [])
            key = str(images[0].ReferencedSOPInstanceUID) if images else ""
            per_image.setdefault(key, []).append(points)
    return [RoiContours(number=number, name=names.get(number, ""), contours=contours[number])
            for number in sorted(contours)]


# --- parts ------------------------------------------------------------------------------


def _single(images: Sequence[Dataset], keyword: str) -> str:
    values = {str(ds.get(keyword, "")) for ds in images}
    if len(values) != 1 or "" in values:
        raise ValueError(f"the images must share one {keyword}; found {len(values - {''})}"
                         + (" and images without one" if "" in values else ""))
    return values.pop()


def _check_rois(rois: Sequence[RoiContours], image_classes: Mapping[str, str]) -> None:
    numbers = [roi.number for roi in rois]
    if len(set(numbers)) != len(numbers):
        raise ValueError("ROI numbers must be unique")
    for roi in rois:
        if not roi.name.strip():
            raise ValueError(f"ROI {roi.number} has no name")
        for image_uid, polygons in roi.contours.items():
            if image_uid not in image_classes:
                raise ValueError(f"ROI {roi.name!r}: a contour references an image that is not "
                                 "among the images given")
            for polygon in polygons:
                points = np.asarray(polygon, dtype=np.float64)
                if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3:
                    raise ValueError(f"ROI {roi.name!r}: a contour is not an (N >= 3, 3) "
                                     f"array of points (shape {points.shape})")
                if not np.isfinite(points).all():
                    raise ValueError(f"ROI {roi.name!r}: a contour has non-finite coordinates")


def _derived_uid(kind: str, source: str) -> str:
    """A stable UID (2.25 form) derived from another, so rebuilding gives the same one."""
    return uuid_uid(digest_int(hashlib.sha256(f"{kind}:{source}".encode()).digest()))


def _image_reference(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def _frame_of_reference_item(images: Sequence[Dataset], frame_uid: str, study_uid: str
                             ) -> Dataset:
    by_series: dict[str, list[Dataset]] = {}
    for ds in images:
        by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    series_items = []
    for series_uid, members in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        series.ContourImageSequence = DicomSequence(
            [_image_reference(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in members])
        series_items.append(series)
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_REFERENCE_CLASS_UID
    study.ReferencedSOPInstanceUID = study_uid
    study.RTReferencedSeriesSequence = DicomSequence(series_items)
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    return frame


def _structure_set_roi(roi: RoiContours, frame_uid: str) -> Dataset:
    item = Dataset()
    item.ROINumber = roi.number
    item.ReferencedFrameOfReferenceUID = frame_uid
    item.ROIName = roi.name
    item.ROIGenerationAlgorithm = "AUTOMATIC"
    return item


def _roi_contour(roi: RoiContours, index: int, image_classes: Mapping[str, str]) -> Dataset:
    item = Dataset()
    item.ROIDisplayColor = list(_PALETTE[index % len(_PALETTE)])
    item.ReferencedROINumber = roi.number
    contours = []
    for image_uid, polygons in roi.contours.items():
        for polygon in polygons:
            points = np.asarray(polygon, dtype=np.float64)
            contour = Dataset()
            contour.ContourImageSequence = DicomSequence(
                [_image_reference(image_classes[image_uid], image_uid)])
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourNumber = len(contours) + 1
            # Already valid DS strings (_decimal_string): stored as they are. Letting
            # pydicom convert and validate each one was half the emulator's CPU per task,
            # taken from the pipeline it shares two cores with in the benches.
            contour.add(DataElement("ContourData", "DS",
                                    [_decimal_string(v) for v in points.ravel()],
                                    already_converted=True))
            contours.append(contour)
    if contours:  # Type 3: an empty ROI simply has no ContourSequence
        item.ContourSequence = DicomSequence(contours)
    return item


def _observation(roi: RoiContours) -> Dataset:
    item = Dataset()
    item.ObservationNumber = roi.number
    item.ReferencedROINumber = roi.number
    item.RTROIInterpretedType = _interpreted_type(roi.name)
    item.ROIInterpreter = ""
    return item


def _interpreted_type(name: str) -> str:
    lowered = name.lower()
    return "EXTERNAL" if "external" in lowered or "body" in lowered else "ORGAN"


def _decimal_string(value: float) -> str:
    """Micrometre precision, always within DS's 16 characters."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
