"""A series as a PACS describes it in a query answer (C-FIND or QIDO-RS)."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset


@dataclass(frozen=True)
class FoundStudy:
    study_uid: str
    study_date: str  # YYYYMMDD, or "" when the PACS did not say
    study_time: str
    study_description: str


@dataclass(frozen=True)
class FoundSeries:
    study_uid: str
    series_uid: str  # "" when the PACS returned none: such a series cannot be retrieved
    modality: str
    study_date: str
    study_time: str
    study_description: str
    series_description: str
    station_name: str
    series_number: int | None
    instance_count: int | None  # NumberOfSeriesRelatedInstances, when the PACS gives it

    @property
    def sort_key(self) -> tuple:
        """Oldest first: by study date and time, then series number (unknown dates last)."""
        return (self.study_date or "99999999", self.study_time or "", self.study_uid,
                self.series_number if self.series_number is not None else 1 << 30,
                self.series_uid)


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None or value == "":
        return ""
    return str(value).strip()


def _int(dataset: Dataset, keyword: str) -> int | None:
    try:
        value = dataset.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def study_from_identifier(identifier: Dataset) -> FoundStudy:
    return FoundStudy(study_uid=_text(identifier, "StudyInstanceUID"),
                      study_date=_text(identifier, "StudyDate"),
                      study_time=_text(identifier, "StudyTime"),
                      study_description=_text(identifier, "StudyDescription"))


def series_from_identifier(study: FoundStudy, identifier: Dataset) -> FoundSeries:
    return FoundSeries(
        study_uid=study.study_uid,
        series_uid=_text(identifier, "SeriesInstanceUID"),
        modality=_text(identifier, "Modality"),
        study_date=study.study_date, study_time=study.study_time,
        study_description=study.study_description,
        series_description=_text(identifier, "SeriesDescription"),
        station_name=_text(identifier, "StationName"),
        series_number=_int(identifier, "SeriesNumber"),
        instance_count=_int(identifier, "NumberOfSeriesRelatedInstances"),
    )
