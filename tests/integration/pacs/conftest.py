"""Synthetic patients as a PACS holds them: planning CTs on given dates and stations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series
from tests.support.pacs import pacs_orthanc, start_dcmqrscp, start_scripted_pacs, tls_pacs_orthanc  # noqa: F401,E501
from tests.support.tls import test_pki  # noqa: F401

SMALL = SeriesGeometry(slices=4, rows=32, columns=32, pixel_spacing=10.0)


@dataclass
class PacsSeries:
    datasets: list[Dataset]
    files: list[Path]

    @property
    def series_uid(self) -> str:
        return self.datasets[0].SeriesInstanceUID


def pacs_series(folder: Path, patient: int, *, study_date: str, station: str = "CTSIM01",
                study_description: str = "CT THORAX PLANNING",
                series_description: str = "Thorax 2.5mm", series_number: int = 1,
                slices: int = 4) -> PacsSeries:
    geometry = SeriesGeometry(slices=slices, rows=48, columns=48, pixel_spacing=10.0)
    datasets = make_ct_series(synthetic_patient(patient), geometry, series_number=series_number,
                              study_description=study_description,
                              series_description=series_description)
    for ds in datasets:
        ds.StudyDate = ds.SeriesDate = study_date
        ds.StationName = station
    files = write_series(datasets, folder / f"p{patient}-s{series_number}")
    return PacsSeries(datasets, files)


@pytest.fixture
def department(pacs_orthanc, tmp_path) -> dict[str, PacsSeries]:  # noqa: F811
    """Orthanc holding three patients: two planning CTs to fetch, one diagnostic CT from
    a station the filters exclude, and a topogram beside the first planning CT."""
    pacs_orthanc.clear()
    held = {
        "thorax": pacs_series(tmp_path, 20, study_date="20261130"),
        "topogram": pacs_series(tmp_path, 20, study_date="20261130",
                                series_description="Topogram 0.6", series_number=2, slices=1),
        "head_neck": pacs_series(tmp_path, 21, study_date="20261201", station="CTSIM02",
                                 study_description="CT HEAD NECK PLANNING",
                                 series_description="HN 2mm"),
        "diagnostic": pacs_series(tmp_path, 22, study_date="20261201", station="CTDIAG1",
                                  study_description="CT ABDOMEN", series_description="Abd 5mm"),
    }
    for series in held.values():
        pacs_orthanc.upload(series.files)
    return held
