"""A job as re-identification sees it: a synthetic CT series, its de-identified copy
(UIDs ``2.25.<n>``, a pseudonym, shifted dates), the job's UID map and subject data,
and RTSTRUCTs on the de-identified images like the ones the DRAW server returns.

This stands in for the de-identification engine, in plain values only, so the
tests of validation, re-identification and delivery do not depend on it.
"""

from __future__ import annotations

import copy
import hashlib
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from dicom_ops.devtools.rtstruct_builder import RoiContours, build_rtstruct
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from tests.factories import SeriesGeometry, SyntheticPatient, make_ct_series, synthetic_patient

SMALL = SeriesGeometry(slices=4, rows=16, columns=16, pixel_spacing=30.0)
KINDS = {"StudyInstanceUID": "study", "SeriesInstanceUID": "series", "SOPInstanceUID": "sop",
         "FrameOfReferenceUID": "frame_of_reference"}
SUBJECT_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "IssuerOfPatientID",
                "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "StudyDescription",
                "ReferringPhysicianName")
DATE_OFFSET_DAYS = -137


def deid_uid(original: str) -> str:
    """What the engine does in spirit: a keyed one-way map into ``2.25.<int>``."""
    digest = hashlib.sha256(f"test-deid-key:{original}".encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def pseudonym_for(patient: SyntheticPatient) -> str:
    return f"PSN{hashlib.sha256(patient.patient_id.encode()).hexdigest()[:10].upper()}"


@dataclass
class DeidentifiedJob:
    patient: SyntheticPatient
    originals: list[Dataset]  # the CT as the scanner sent it
    images: list[Dataset]  # the same CT as it went to the DRAW server
    uid_map: dict[str, tuple[str, str]]  # de-identified UID -> (original UID, kind)
    subject: dict[str, str]  # original patient and study attributes
    pseudonym: str

    def rois(self) -> list[RoiContours]:
        """Two structures with a square contour on every image (patient mm)."""
        rois = []
        for number, (name, half) in enumerate((("BODY", 90.0), ("Spine", 12.5)), start=1):
            contours = {}
            for ds in self.images:
                z = float(ds.ImagePositionPatient[2])
                square = np.array([[-half, -half, z], [half, -half, z], [half, half, z],
                                   [-half, half, z]]) + np.array([0.125, -0.375, 0.0])
                contours[str(ds.SOPInstanceUID)] = [square]
            rois.append(RoiContours(number=number, name=name, contours=contours))
        return rois

    def rtstruct(self, sop_instance_uid: str | None = None) -> Dataset:
        """The RTSTRUCT the DRAW server would return for this job."""
        uid = sop_instance_uid or deid_uid(f"rtstruct-from-server:{self.patient.index}")
        return build_rtstruct(self.images, self.rois(), sop_instance_uid=uid,
                              now=datetime(2026, 3, 14, 12, 0, 0))

    def original_uids(self, keyword: str) -> set[str]:
        return {str(ds[keyword].value) for ds in self.originals}


def to_bytes(ds: Dataset, *, implicit_vr: bool = False) -> bytes:
    buffer = io.BytesIO()
    if implicit_vr:
        ds = copy.deepcopy(ds)
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def deidentified_job(index: int, geometry: SeriesGeometry = SMALL) -> DeidentifiedJob:
    patient = synthetic_patient(index)
    originals = make_ct_series(patient, geometry)
    pseudonym = pseudonym_for(patient)
    uid_map: dict[str, tuple[str, str]] = {}
    images = [_deidentify(ds, pseudonym, uid_map) for ds in originals]
    first = originals[0]
    subject = {key: str(first.get(key, "")) for key in SUBJECT_KEYS}
    return DeidentifiedJob(patient, originals, images, uid_map, subject, pseudonym)


def _deidentify(original: Dataset, pseudonym: str, uid_map: dict[str, tuple[str, str]]
                ) -> Dataset:
    ds = copy.deepcopy(original)
    ds.remove_private_tags()
    for keyword in ("OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress",
                    "PatientTelephoneNumbers", "PatientComments", "ImageComments",
                    "RequestAttributesSequence", "IssuerOfPatientID"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    ds.PatientBirthDate = ""
    ds.AccessionNumber = ""
    ds.StudyID = ""
    ds.ReferringPhysicianName = ""
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        ds[keyword].value = _shifted(ds[keyword].value)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "dicom-ops test de-identification"
    for element in _instance_uid_elements(ds):
        original_uid = str(element.value)
        new = deid_uid(original_uid)
        uid_map.setdefault(new, (original_uid, KINDS.get(element.keyword, "other")))
        element.value = new
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _shifted(value: str) -> str:
    day = date(int(value[:4]), int(value[4:6]), int(value[6:8])) + timedelta(DATE_OFFSET_DAYS)
    return day.strftime("%Y%m%d")


def _instance_uid_elements(ds: Dataset) -> list[DataElement]:
    found = []

    def visit(dataset: Dataset, element: DataElement) -> None:
        if element.VR == "UI" and not element.keyword.endswith("ClassUID") and element.value:
            found.append(element)

    ds.walk(visit)
    return found
