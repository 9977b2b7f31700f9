"""Query/retrieve over DICOMweb with ``dicomweb-client``: QIDO-RS for studies and series,
WADO-RS to retrieve a series into a folder. The same answers as ``dimse`` gives."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import requests
from pydicom import dcmwrite
from pydicom.dataset import Dataset

from dicom_ops.delivery.dicomweb import DicomWebNode, http_failure
from dicom_ops.intake.storage import write_intake_file
from dicom_ops.pacs.dimse import RetrieveOutcome
from dicom_ops.pacs.errors import PacsError
from dicom_ops.pacs.found import (
    FoundSeries,
    FoundStudy,
    series_from_identifier,
    study_from_identifier,
)

SERIES_FIELDS = ("SeriesDescription", "StationName", "SeriesNumber", "Modality",
                 "NumberOfSeriesRelatedInstances")
STUDY_FIELDS = ("StudyDate", "StudyTime", "StudyDescription")


def _failed(node: DicomWebNode, what: str, exc: Exception) -> PacsError:
    failure = http_failure(node, what, exc)
    return PacsError(str(failure), transient=failure.transient)


def _datasets(answers: list[dict]) -> list[Dataset]:
    return [Dataset.from_json(answer) for answer in answers]


def echo(node: DicomWebNode) -> None:
    """The DICOMweb counterpart of C-ECHO: a QIDO-RS search that asks for one study."""
    try:
        node.client().search_for_studies(limit=1)
    except (requests.RequestException, OSError) as exc:
        raise _failed(node, "QIDO-RS", exc) from exc


def find_studies(node: DicomWebNode, study_date_key: str) -> list[FoundStudy]:
    filters = {"StudyDate": study_date_key} if study_date_key != "-" else {}
    try:
        answers = node.client().search_for_studies(search_filters=filters, fields=STUDY_FIELDS,
                                                   get_remaining=True)
    except (requests.RequestException, OSError) as exc:
        raise _failed(node, "QIDO-RS (studies)", exc) from exc
    return [study_from_identifier(identifier) for identifier in _datasets(answers)]


def find_series(node: DicomWebNode, studies: list[FoundStudy]) -> Iterator[list[FoundSeries]]:
    client = node.client()
    for study in studies:
        try:
            answers = client.search_for_series(study.study_uid, fields=SERIES_FIELDS,
                                               get_remaining=True)
        except (requests.RequestException, OSError) as exc:
            raise _failed(node, "QIDO-RS (series)", exc) from exc
        yield [series_from_identifier(study, identifier) for identifier in _datasets(answers)]


def retrieve_series(node: DicomWebNode, series: FoundSeries, folder: Path) -> RetrieveOutcome:
    """WADO-RS every instance of ``series`` into ``folder`` as Part 10 files."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        datasets = node.client().retrieve_series(series.study_uid, series.series_uid)
    except (requests.RequestException, OSError) as exc:
        raise _failed(node, "WADO-RS", exc) from exc
    for number, dataset in enumerate(datasets, start=1):
        buffer = BytesIO()
        dcmwrite(buffer, dataset, enforce_file_format=True)
        write_intake_file(folder / f"{number:06d}.dcm", [buffer.getvalue()])
    expected = series.instance_count
    missing = max((expected or 0) - len(datasets), 0)
    return RetrieveOutcome(completed=len(datasets), failed=missing, warning=0,
                           status=0xB000 if missing else 0x0000,
                           detail=f"WADO-RS returned {len(datasets)} of {expected} instances"
                           if missing else "")
