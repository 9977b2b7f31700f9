"""What a PACS query looks for: OpenREM's filters as one pydantic model, and the rule
that says whether a found series passes them.

Only the modality and the study date go to the PACS as matching keys (every Q/R SCP
supports those); descriptions and station names are matched here, case-insensitive
substrings, because PACSes differ in what they match and how (case, wildcards).
"""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dicom_ops.config import Settings
from dicom_ops.pacs.found import FoundSeries


class QueryFilters(BaseModel):
    """OpenREM-style filters. Dates: ``days_back`` days before the run's day up to it,
    unless ``date_from``/``date_to`` are given (either alone is open-ended)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: str = "CT"
    days_back: int = Field(1, ge=0, le=36500)
    date_from: date | None = None
    date_to: date | None = None
    station_include: tuple[str, ...] = ()
    station_exclude: tuple[str, ...] = ()
    study_description_include: tuple[str, ...] = ()
    study_description_exclude: tuple[str, ...] = ()
    series_description_include: tuple[str, ...] = ()
    series_description_exclude: tuple[str, ...] = ()
    max_series: int = Field(50, ge=1, le=10000)

    @field_validator("station_include", "station_exclude", "study_description_include",
                     "study_description_exclude", "series_description_include",
                     "series_description_exclude", mode="before")
    @classmethod
    def _words(cls, value: object) -> object:
        """A comma-separated string (a setting, a CLI flag, a DAG param) or a list."""
        if value is None:
            return ()
        if isinstance(value, str):
            value = value.split(",")
        return tuple(str(part).strip() for part in value if str(part).strip())

    @field_validator("date_from", "date_to", mode="before")
    @classmethod
    def _empty_date(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("modality")
    @classmethod
    def _modality(cls, value: str) -> str:
        value = value.strip().upper()
        if not value.isalnum() or len(value) > 16:
            raise ValueError(f"modality {value!r} is not a DICOM modality code (e.g. CT)")
        return value

    @model_validator(mode="after")
    def _dates_in_order(self) -> QueryFilters:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"date_from {self.date_from} is after date_to {self.date_to}")
        return self

    def study_dates(self, today: date) -> tuple[date | None, date | None]:
        """The study date range this query asks for on ``today``."""
        if self.date_from or self.date_to:
            return self.date_from, self.date_to
        return today - timedelta(days=self.days_back), today

    def study_date_key(self, today: date) -> str:
        """The range as a DICOM date range matching key (``20261101-20261202``)."""
        start, end = self.study_dates(today)
        return f"{_da(start)}-{_da(end)}"


def _da(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def filtered_out(series: FoundSeries, filters: QueryFilters) -> str | None:
    """Why ``series`` does not pass ``filters``, or ``None`` when it does."""
    if series.modality and series.modality.upper() != filters.modality:
        return f"modality {series.modality} is not {filters.modality}"
    checks = (
        ("station name", series.station_name, filters.station_include, filters.station_exclude),
        ("study description", series.study_description, filters.study_description_include,
         filters.study_description_exclude),
        ("series description", series.series_description, filters.series_description_include,
         filters.series_description_exclude),
    )
    for what, value, include, exclude in checks:
        text = (value or "").casefold()
        if include and not any(word.casefold() in text for word in include):
            return f"{what} matches none of {', '.join(include)}"
        hit = next((word for word in exclude if word.casefold() in text), None)
        if hit:
            return f"{what} contains excluded {hit!r}"
    return None


FILTER_SETTINGS = ("modality", "days_back", "station_include", "station_exclude",
                   "study_description_include", "study_description_exclude",
                   "series_description_include", "series_description_exclude", "max_series")


def filters_from(settings: Settings, **overrides: object) -> QueryFilters:
    """The settings' filters (``DICOM_OPS_PACS_*``), with ``overrides`` (DAG params, CLI
    flags) on top; an override of ``None`` or ``""`` keeps the setting. Raises
    ``ValueError`` naming the filter."""
    values: dict[str, object] = {name: getattr(settings, f"pacs_{name}")
                                 for name in FILTER_SETTINGS}
    values.update({key: value for key, value in overrides.items()
                   if value is not None and value != ""})
    try:
        return QueryFilters(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'filters'}: "
                             f"{error['msg']}" for error in exc.errors())
        raise ValueError(f"PACS query filters: {problems}") from None
