"""Synthetic CT series with realistic geometry, a segmentable phantom and dense PHI.

Every value here is made up. The tests use it as their corpus (``tests/factories.py``)
and ``dicom-ops sample`` writes it to disk for demos and benchmarks.

The phantom, in Hounsfield units: air (-1000) outside an elliptic body (40),
two lungs (-800) and a vertebra (700); lungs shrink towards the ends of the
volume so each slice differs. PHI is planted wherever real scanners and RIS put
it: patient module, other IDs and names, physicians and operators, institution,
accession, free-text comments, nested request attributes, private tags.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian

from dicom_ops.uids import PYDICOM_ROOT, digest_int, uid_under_root

SYNTHETIC_UID_ROOT = PYDICOM_ROOT  # pydicom's root, for made-up data
PRIVATE_CREATOR = "DICOMOPS SYNTH"
HU_AIR, HU_BODY, HU_LUNG, HU_BONE = -1000, 40, -800, 700
RESCALE_INTERCEPT = -1024

_GIVEN = ("JANE", "JOHN", "MARIA", "AHMED", "WEI", "OLGA", "PIETER", "AMARA", "LUCA", "SIOBHAN")
_FAMILY = ("DOE", "SMITH", "GARCIA", "KHAN", "ZHANG", "IVANOVA", "DE VRIES", "OKAFOR",
           "ROSSI", "MURPHY", "NAKAMURA", "LINDQVIST", "MBEKI", "SANTOS", "KOWALSKI")


def synthetic_uid(*parts: object) -> str:
    """A deterministic, valid UID under the synthetic root."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return uid_under_root(SYNTHETIC_UID_ROOT, digest_int(digest, bits=120), max_digits=36)


@dataclass(frozen=True)
class SyntheticPatient:
    """A made-up patient: everything here counts as PHI for leak checks."""

    index: int
    family_name: str
    given_name: str
    middle_name: str
    patient_id: str
    birth_date: str
    sex: str
    accession: str
    other_ids: tuple[str, ...]
    address: str
    phone: str

    @property
    def dicom_name(self) -> str:
        return f"{self.family_name}^{self.given_name}^{self.middle_name}"

    @property
    def study_uid(self) -> str:
        return synthetic_uid("study", self.index, self.patient_id)

    def phi_strings(self) -> list[str]:
        """Identifying strings that must never leave the hospital."""
        values = [self.family_name, self.given_name, self.middle_name, self.patient_id,
                  self.birth_date, self.accession, *self.other_ids, self.address, self.phone]
        return [v for v in values if len(v) >= 3]


def synthetic_patient(index: int = 0) -> SyntheticPatient:
    """Patient number ``index``: deterministic, and distinct from every other index."""
    given = _GIVEN[index % len(_GIVEN)]
    family = _FAMILY[(index * 7) % len(_FAMILY)]
    return SyntheticPatient(
        index=index,
        family_name=f"{family}{index:03d}" if index >= len(_FAMILY) else family,
        given_name=given,
        middle_name="QUINTUS",
        patient_id=f"PID{index:05d}X",
        birth_date=f"19{40 + index % 50:02d}{1 + index % 12:02d}{1 + index % 28:02d}",
        sex="F" if index % 2 == 0 else "M",
        accession=f"ACC{index:06d}Z",
        other_ids=(f"MRN-{index:05d}-B", f"NHS{9000000 + index}"),
        address=f"{12 + index} Nightingale Lane, Sheffield",
        phone=f"+44-114-555-{index:04d}",
    )


@dataclass(frozen=True)
class SeriesGeometry:
    slices: int = 20
    rows: int = 64
    columns: int = 64
    pixel_spacing: float = 7.5  # mm; 64 px * 7.5 = 480 mm field of view
    slice_thickness: float = 2.5
    first_z: float = 0.0
    z_step: float = -2.5  # instance 1 at the top (largest z), going down
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def phantom_hu(rows: int, columns: int, position: float) -> np.ndarray:
    """One axial slice of the phantom; ``position`` in [0, 1] along the volume."""
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    cy, cx = (rows - 1) / 2.0, (columns - 1) / 2.0
    image = np.full((rows, columns), HU_AIR, dtype=np.int16)
    body = ((x - cx) / (0.42 * columns)) ** 2 + ((y - cy) / (0.32 * rows)) ** 2 <= 1.0
    image[body] = HU_BODY
    lung_scale = max(0.0, 1.0 - abs(position - 0.5) * 1.6)  # largest mid-volume
    if lung_scale > 0.15:
        for side in (-1, 1):
            lung = (
                ((x - (cx + side * 0.2 * columns)) / (0.13 * columns * lung_scale)) ** 2
                + ((y - (cy - 0.03 * rows)) / (0.2 * rows * lung_scale)) ** 2
            ) <= 1.0
            image[lung & body] = HU_LUNG
    spine = ((x - cx) ** 2 + (y - (cy + 0.2 * rows)) ** 2) <= (0.06 * columns) ** 2
    image[spine] = HU_BONE
    return image


def _person_item(patient: SyntheticPatient) -> Dataset:
    item = Dataset()
    item.PatientID = patient.other_ids[0]
    item.IssuerOfPatientID = "SHEFFIELD TEACHING HOSPITALS"
    item.TypeOfPatientID = "TEXT"
    return item


def _request_item(patient: SyntheticPatient, study_uid: str) -> Dataset:
    item = Dataset()
    item.RequestedProcedureID = patient.accession
    item.ScheduledProcedureStepID = f"SPS-{patient.patient_id}"
    item.RequestedProcedureDescription = f"Planning CT for {patient.family_name}"
    item.AccessionNumber = patient.accession
    item.StudyInstanceUID = study_uid
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Mgmt (class UID)
    ref.ReferencedSOPInstanceUID = synthetic_uid("ref-study", patient.index)
    item.ReferencedStudySequence = DicomSequence([ref])
    return item


def make_ct_series(
    patient: SyntheticPatient | None = None,
    geometry: SeriesGeometry | None = None,
    *,
    series_number: int = 1,
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance_numbers: Sequence[int] | None = None,
    body_part: str = "CHEST",
    study_description: str = "CT THORAX PLANNING",
    series_description: str = "Thorax 2.5mm",
) -> list[Dataset]:
    """A CT series as datasets (file meta included), instance 1 first."""
    patient = patient or synthetic_patient(0)
    geometry = geometry or SeriesGeometry()
    study_uid = study_uid or patient.study_uid
    series_uid = series_uid or synthetic_uid("series", patient.index, study_uid, series_number)
    frame_uid = synthetic_uid("for", patient.index, study_uid)
    numbers = list(instance_numbers or range(1, geometry.slices + 1))
    datasets = []
    for position_index, number in enumerate(numbers):
        z = geometry.first_z + (number - 1) * geometry.z_step
        fraction = position_index / max(1, len(numbers) - 1)
        hu = phantom_hu(geometry.rows, geometry.columns, fraction)
        sop_uid = synthetic_uid("sop", series_uid, number)
        datasets.append(
            _ct_dataset(patient, geometry, study_uid, series_uid, frame_uid, sop_uid, number, z,
                        hu, series_number, body_part, study_description, series_description)
        )
    return datasets


def _ct_dataset(patient, geometry, study_uid, series_uid, frame_uid, sop_uid, number, z, hu,
                series_number, body_part, study_description, series_description) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.SourceApplicationEntityTitle = "CT_SCANNER_1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20260314"
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.AcquisitionTime = ds.ContentTime = f"1016{number % 60:02d}"
    ds.AccessionNumber = patient.accession
    ds.Modality = "CT"
    ds.Manufacturer = "SYNTHETIC MEDICAL"
    ds.InstitutionName = "Sheffield Teaching Hospitals"
    ds.InstitutionAddress = "Herries Road, Sheffield S5 7AU"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.StationName = "CTSIM01"
    ds.StudyDescription = study_description
    ds.SeriesDescription = series_description
    ds.PhysiciansOfRecord = "QUINN^MICHAELA"
    ds.PerformingPhysicianName = "BAILEY^MIRANDA"
    ds.OperatorsName = "TECH^TERRY"
    ds.ManufacturerModelName = "PHANTOM-CT"
    ds.PatientName = patient.dicom_name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = "STH"
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.OtherPatientIDsSequence = DicomSequence([_person_item(patient)])
    ds.OtherPatientNames = f"{patient.family_name}^{patient.given_name[0]}"
    ds.PatientAge = "061Y"
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = patient.phone
    ds.PatientComments = f"Call {patient.given_name} {patient.family_name} on {patient.phone}"
    ds.BodyPartExamined = body_part
    ds.SliceThickness = geometry.slice_thickness
    ds.KVP = 120
    ds.DeviceSerialNumber = f"SN-{patient.index:04d}-77"
    ds.ProtocolName = "RT PLANNING"
    ds.ConvolutionKernel = "B30f"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = f"S{patient.index:04d}"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = number
    half_fov_x = (geometry.columns - 1) * geometry.pixel_spacing / 2.0
    half_fov_y = (geometry.rows - 1) * geometry.pixel_spacing / 2.0
    ds.ImagePositionPatient = [-half_fov_x, -half_fov_y, z]
    ds.ImageOrientationPatient = list(geometry.orientation)
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = z
    ds.ImageComments = f"QA ok for {patient.family_name} {patient.patient_id}"
    ds.RequestAttributesSequence = DicomSequence([_request_item(patient, study_uid)])
    pps = Dataset()
    pps.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"  # MPPS class UID
    pps.ReferencedSOPInstanceUID = synthetic_uid("mpps", series_uid)
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([pps])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = geometry.rows
    ds.Columns = geometry.columns
    ds.PixelSpacing = [geometry.pixel_spacing, geometry.pixel_spacing]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.RescaleIntercept = RESCALE_INTERCEPT
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.BurnedInAnnotation = "NO"
    block = ds.private_block(0x0029, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", patient.patient_id)
    block.add_new(0x11, "PN", patient.dicom_name)
    block.add_new(0x12, "LT", f"MRN {patient.other_ids[1]} born {patient.birth_date}")
    ds.PixelData = (hu.astype(np.int32) - RESCALE_INTERCEPT).astype(np.uint16).tobytes()
    return ds


def instance_filename(ds: Dataset) -> str:
    return f"CT.{ds.SOPInstanceUID}.dcm"


def write_series(datasets: Iterable[Dataset], folder: Path) -> list[Path]:
    """Write each dataset as a DICOM Part 10 file; returns the paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / instance_filename(ds)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_sample(out_dir: Path, patients: int = 1, geometry: SeriesGeometry | None = None
                 ) -> list[Path]:
    """``dicom-ops sample``: one series per patient in ``out_dir/<patient>/``; returns folders."""
    folders = []
    for index in range(patients):
        patient = synthetic_patient(index)
        folder = out_dir / f"patient{index:03d}"
        write_series(make_ct_series(patient, geometry), folder)
        folders.append(folder)
    return folders


# --- bad input ------------------------------------------------------------------------


def as_localizer(ds: Dataset) -> Dataset:
    """A scout image: ImageType LOCALIZER, and not on the axial stack."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
    return ds


def with_burned_in_annotation(ds: Dataset) -> Dataset:
    ds.BurnedInAnnotation = "YES"
    return ds


def without_sop_instance_uid(ds: Dataset) -> Dataset:
    del ds.SOPInstanceUID
    del ds.file_meta.MediaStorageSOPInstanceUID
    return ds


def with_hostile_uids(ds: Dataset) -> Dataset:
    """UIDs that would escape a folder if used as path parts."""
    ds.StudyInstanceUID = "../../../../tmp/evil"
    ds.SeriesInstanceUID = "1.2/../../escape"
    return ds


def write_truncated(ds: Dataset, path: Path, keep_bytes: int = 400) -> Path:
    """A Part 10 file cut short in the middle of its elements."""
    ds.save_as(path, enforce_file_format=True)
    path.write_bytes(path.read_bytes()[:keep_bytes])
    return path


def write_non_dicom(path: Path) -> Path:
    path.write_text("This is a scanner log file, not DICOM.\n" * 20)
    return path


def copy_geometry(geometry: SeriesGeometry, **changes) -> SeriesGeometry:
    return replace(geometry, **changes)
