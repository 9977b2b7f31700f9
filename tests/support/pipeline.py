"""Series that arrived and are ready, as the listener would leave them, for pipeline tests;
and the check that a delivered RTSTRUCT is the one for its patient and series."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dicom_ops.config import Settings
from dicom_ops.db.models import Series, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.devtools.rtstruct_builder import referenced_uids
from pydicom.dataset import Dataset

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series

SMALL = SeriesGeometry(slices=6, rows=48, columns=48, pixel_spacing=10.0)


@dataclass
class ReadySeries:
    series_id: int
    folder: Path
    datasets: list[Dataset]


def ready_series_on_disk(settings: Settings, patient_index: int = 0,
                         geometry: SeriesGeometry = SMALL, *,
                         series_number: int = 1) -> ReadySeries:
    """A synthetic CT in its origin folder with a `ready` row in the app DB (another
    ``series_number`` gives another series of the same patient and study)."""
    datasets = make_ct_series(synthetic_patient(patient_index), geometry,
                              series_number=series_number)
    first = datasets[0]
    folder = settings.datastore_dir / first.StudyInstanceUID / first.SeriesInstanceUID
    write_series(datasets, folder)
    with session_scope(settings.db_url) as session:
        series = Series(study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID,
                        modality="CT", description=first.SeriesDescription,
                        instance_count=len(datasets), folder=str(folder),
                        origin_folder=str(folder), source="scp", state="ready",
                        ready_at=utcnow())
        session.add(series)
        session.flush()
        series_id = series.id
    return ReadySeries(series_id, folder, datasets)


def assert_rtstruct_for(rtstruct: Dataset, patient, series: list[Dataset]) -> None:
    """The RTSTRUCT names the patient again (re-identified) and references exactly this
    series: its study, series and frame of reference, and only its images."""
    first = series[0]
    assert rtstruct.PatientID == patient.patient_id
    assert str(rtstruct.PatientName) == patient.dicom_name
    assert rtstruct.StudyInstanceUID == first.StudyInstanceUID
    refs = referenced_uids(rtstruct)
    assert refs["series"] == {first.SeriesInstanceUID}
    assert refs["frame_of_reference"] == {first.FrameOfReferenceUID}
    assert refs["contour_images"] <= {ds.SOPInstanceUID for ds in series}
