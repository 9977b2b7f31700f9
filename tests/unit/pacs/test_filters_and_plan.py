"""OpenREM-style filters and the plan: which found series a query retrieves and why it
skips the others (pure functions, no PACS)."""

from __future__ import annotations

from datetime import date

import pytest
from dicom_ops.config import load_settings
from dicom_ops.pacs.filters import QueryFilters, filtered_out, filters_from
from dicom_ops.pacs.found import FoundSeries
from dicom_ops.pacs.plan import Prior, Verdict, decide


def found(uid: str = "1.2.3.1", *, study_date: str = "20261201", station: str = "CTSIM01",
          study: str = "CT THORAX PLANNING", series: str = "Thorax 2mm",
          modality: str = "CT", number: int = 1) -> FoundSeries:
    return FoundSeries("1.2.3", uid, modality, study_date, "101500", study, series, station,
                       number, 100)


def test_days_back_counts_back_from_the_run_day_and_explicit_dates_win():
    assert QueryFilters(days_back=7).study_date_key(date(2026, 12, 2)) == "20261125-20261202"
    explicit = QueryFilters(days_back=7, date_from="2026-11-01")
    assert explicit.study_date_key(date(2026, 12, 2)) == "20261101-"


def test_descriptions_and_stations_match_case_insensitive_substrings():
    filters = QueryFilters(station_include="ctsim", study_description_exclude="diagnostic",
                           series_description_include=["thorax", "hn"])

    assert filtered_out(found(), filters) is None
    assert filtered_out(found(station="CTDIAG"), filters) == \
        "station name matches none of ctsim"
    assert filtered_out(found(study="Diagnostic CT"), filters) == \
        "study description contains excluded 'diagnostic'"
    assert filtered_out(found(series="Topogram"), filters) == \
        "series description matches none of thorax, hn"
    assert filtered_out(found(modality="MR"), filters) == "modality MR is not CT"


def test_bad_filters_are_refused_naming_the_filter():
    settings = load_settings({})
    with pytest.raises(ValueError, match="date_from 2026-12-02 is after date_to 2026-12-01"):
        filters_from(settings, date_from="2026-12-02", date_to="2026-12-01")
    with pytest.raises(ValueError, match="max_series"):
        filters_from(settings, max_series=0)
    with pytest.raises(ValueError, match="days_back"):
        filters_from(settings, days_back="often")


def test_settings_are_the_defaults_and_params_override_them():
    settings = load_settings({"DICOM_OPS_PACS_STATION_EXCLUDE": "DIAG, MOBILE",
                              "DICOM_OPS_PACS_MAX_SERIES": "10"})

    filters = filters_from(settings, max_series=3, modality="", days_back=None)

    assert filters.station_exclude == ("DIAG", "MOBILE")
    assert (filters.max_series, filters.modality, filters.days_back) == (3, "CT", 1)


def test_known_arriving_and_retry_series_and_the_limit_decide_in_age_order():
    batch = [found("1.2.3.5", study_date="20261201"), found("1.2.3.4", study_date="20261130"),
             found("1.2.3.6", study_date="20261201", number=2),
             found("1.2.3.7", study_date="20261201", number=3),
             found("1.2.3.8", study_date="20261202")]
    priors = {"1.2.3.4": Prior(Verdict.KNOWN, "already in the app DB"),
              "1.2.3.6": Prior(Verdict.ARRIVING, "still arriving"),
              "1.2.3.7": Prior(Verdict.RETRIEVE, "asked again: 1 failed")}

    decisions = decide(batch, QueryFilters(max_series=2), priors, room=2)

    assert [(d.series.series_uid, d.verdict.value, d.reason) for d in decisions] == [
        ("1.2.3.4", "known", "already in the app DB"),
        ("1.2.3.5", "retrieve", "new"),
        ("1.2.3.6", "arriving", "still arriving"),
        ("1.2.3.7", "retrieve", "asked again: 1 failed"),
        ("1.2.3.8", "over_limit", "over this run's limit of 2 series; a later run takes it"),
    ]


def test_a_series_listed_twice_is_decided_once():
    decisions = decide([found("1.2.3.9"), found("1.2.3.9")], QueryFilters(), {}, room=5)
    assert [d.verdict for d in decisions] == [Verdict.RETRIEVE]
