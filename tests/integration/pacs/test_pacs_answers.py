"""Answers no real PACS gives on demand, from a scripted pynetdicom Q/R SCP over real
DIMSE: thousands of studies (the per-run limit holds, oldest first) and series without
a Series Instance UID (skipped with a reason)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from dicom_ops.db.models import PacsQuery, PacsRequest
from dicom_ops.db.session import session_scope
from dicom_ops.pacs.errors import PacsError
from dicom_ops.pacs.filters import QueryFilters
from dicom_ops.pacs.run import check_nodes, query
from dicom_ops.pacs.source import PacsSource
from pydicom.dataset import Dataset
from sqlalchemy import select

TODAY = date(2026, 12, 2)
STUDIES = 2000


def _study(number: int, day: date) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1.{number}"
    ds.StudyDate = day.strftime("%Y%m%d")
    ds.StudyTime = f"{number % 24:02d}0000"
    ds.StudyDescription = "CT PLANNING"
    return ds


def _series(study: Dataset, number: int, *, uid: bool = True) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study.StudyInstanceUID
    if uid:
        ds.SeriesInstanceUID = f"{study.StudyInstanceUID}.{number}"
    ds.Modality = "CT"
    ds.SeriesNumber = number
    ds.SeriesDescription = "Planning 2mm"
    ds.NumberOfSeriesRelatedInstances = 120
    return ds


def test_thousands_of_studies_the_limit_holds_and_the_oldest_go_first(settings,
                                                                      start_scripted_pacs):
    # given a PACS answering 2000 studies over 60 days, in no particular order
    studies = [_study(n, TODAY - timedelta(days=n % 60)) for n in range(STUDIES)]
    random.Random(15).shuffle(studies)
    pacs = start_scripted_pacs(studies, {s.StudyInstanceUID: [_series(s, 1)] for s in studies})
    source = PacsSource("busy", pacs.node)

    # when a run with a limit of 5 series queries 60 days
    plan = query(settings, source, QueryFilters(days_back=60, max_series=5), TODAY)

    # then it asked about the 5 oldest studies only, and planned their 5 series
    oldest = sorted(studies, key=lambda s: (s.StudyDate, s.StudyTime, s.StudyInstanceUID))[:5]
    assert pacs.series_queries == [s.StudyInstanceUID for s in oldest]
    assert plan.studies_found == STUDIES
    assert "1995 more studies not looked into (limit reached)" in plan.summary()
    with session_scope(settings.db_url) as session:
        planned = session.scalars(select(PacsRequest).order_by(PacsRequest.id)).all()
        assert [r.study_uid for r in planned] == [s.StudyInstanceUID for s in oldest]
        assert session.get(PacsQuery, plan.query_id).studies_found == STUDIES


def test_a_series_without_a_series_instance_uid_is_skipped_with_a_reason(settings,
                                                                         start_scripted_pacs):
    study = _study(1, TODAY)
    pacs = start_scripted_pacs([study], {study.StudyInstanceUID: [
        _series(study, 1, uid=False), _series(study, 2)]})

    plan = query(settings, PacsSource("odd", pacs.node), QueryFilters(), TODAY)

    assert [(d.verdict.value, d.reason) for d in plan.decisions] == [
        ("unusable", "the PACS returned no Series Instance UID"), ("retrieve", "new")]
    with session_scope(settings.db_url) as session:
        recorded = session.get(PacsQuery, plan.query_id)
        assert (recorded.unusable, recorded.series_found) == (1, 2)
        assert [r.series_uid for r in session.scalars(select(PacsRequest))] == [
            f"{study.StudyInstanceUID}.2"]


def test_a_pacs_that_does_not_know_our_calling_ae_title_says_to_register_it(
        settings, start_scripted_pacs):
    pacs = start_scripted_pacs([], {}, require_calling_aet=["SOMEONE_ELSE"])

    with pytest.raises(PacsError, match="does not know our calling AE title DRAWCLIENT: "
                                        "register it there") as failure:
        check_nodes(settings, PacsSource("strict", pacs.node))
    assert not failure.value.transient
