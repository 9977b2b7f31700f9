"""Query/retrieve against Orthanc as the PACS: C-FIND study then series, filters, C-MOVE
to our listener (a real subprocess), C-GET, QIDO-RS/WADO-RS, skipping what is known, and
a PACS that refuses us or is not there."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from dicom_ops.db.models import PacsQuery, PacsRequest
from dicom_ops.db.session import session_scope
from dicom_ops.delivery.cstore import DicomNode
from dicom_ops.delivery.tls import ClientTls
from dicom_ops.pacs.errors import PacsError
from dicom_ops.pacs.filters import QueryFilters
from dicom_ops.pacs.plan import Verdict
from dicom_ops.pacs.run import check_nodes, query, retrieve
from dicom_ops.pacs.source import PacsSource
from sqlalchemy import func, select

from tests.support.listener import series_rows, wait_ready
from tests.support.postgres import free_port

TODAY = date(2026, 12, 2)
FILTERS = QueryFilters(days_back=7, station_exclude=("diag",),
                       series_description_exclude=("topogram", "scout"))


def verdicts(plan) -> dict[str, tuple[str, str]]:
    return {d.series.series_uid: (d.verdict.value, d.reason) for d in plan.decisions}


def test_dry_run_shows_what_would_be_retrieved_and_why_the_rest_is_skipped(
        settings, pacs_orthanc, department):
    source = PacsSource("pacs", pacs_orthanc.dicom_node())

    plan = query(settings, source, FILTERS, TODAY, dry_run=True)

    found = verdicts(plan)
    assert found[department["thorax"].series_uid][0] == "retrieve"
    assert found[department["head_neck"].series_uid][0] == "retrieve"
    assert found[department["topogram"].series_uid] == (
        "filtered", "series description contains excluded 'topogram'")
    assert found[department["diagnostic"].series_uid] == (
        "filtered", "station name contains excluded 'diag'")
    # oldest first: the thorax study (30 Nov) before the head and neck one (1 Dec)
    retrieved = [d.series.series_uid for d in plan.decisions if d.retrieve]
    assert retrieved == [department["thorax"].series_uid, department["head_neck"].series_uid]
    with session_scope(settings.db_url) as session:
        assert session.scalar(select(func.count()).select_from(PacsQuery)) == 0


def test_new_series_are_moved_to_our_listener_and_become_ready_with_source_pacs(
        settings, pacs_orthanc, department, start_listener):
    listener = start_listener()
    pacs_orthanc.declare_listener(settings.ae_title, listener.port)
    settings = dataclasses.replace(settings, listener_port=listener.port)
    source = PacsSource("pacs", pacs_orthanc.dicom_node())

    assert check_nodes(settings, source) == [f"PACS {source}",
                                             f"listener DRAWCLIENT@127.0.0.1:{listener.port}"]
    plan = query(settings, source, FILTERS, TODAY)
    report = retrieve(settings, source, plan.query_id)

    wanted = [department["thorax"].series_uid, department["head_neck"].series_uid]
    rows = wait_ready(settings.db_url, wanted)
    assert {rows[uid].source for uid in wanted} == {"pacs"}
    assert rows[wanted[0]].instance_count == 4
    assert department["diagnostic"].series_uid not in rows
    assert "2 requested, 8 instances received, 0 failed" in report.summary
    with session_scope(settings.db_url) as session:
        recorded = session.get(PacsQuery, plan.query_id)
        assert (recorded.status, recorded.series_found, recorded.filtered) == ("done", 4, 2)
        assert {r.state for r in session.scalars(select(PacsRequest))} == {"received"}

    # the next run finds the same series and asks for none of them again
    again = query(settings, source, FILTERS, TODAY)
    assert {v for v, _ in verdicts(again).values()} == {"known", "filtered"}
    assert retrieve(settings, source, again.query_id).failed == 0
    with session_scope(settings.db_url) as session:
        assert session.get(PacsQuery, again.query_id).requested == 0


def test_c_get_retrieves_without_our_listener(settings, pacs_orthanc, department):
    source = PacsSource("pacs", pacs_orthanc.dicom_node(), retrieve="get")

    assert check_nodes(settings, source) == [f"PACS {source}"]  # no listener needed
    plan = query(settings, source, FILTERS.model_copy(update={"max_series": 1}), TODAY)
    retrieve(settings, source, plan.query_id)

    rows = series_rows(settings.db_url)
    thorax = rows[department["thorax"].series_uid]
    assert (thorax.state, thorax.source, thorax.instance_count) == ("ready", "pacs", 4)
    # the limit of 1 is reached in the oldest study: the later ones wait for the next run
    assert department["head_neck"].series_uid not in rows
    assert plan.studies_queried == 1
    assert "2 more studies not looked into (limit reached)" in plan.summary()


def test_a_dicomweb_pacs_is_queried_with_qido_rs_and_retrieved_with_wado_rs(
        settings, pacs_orthanc, department):
    source = PacsSource("pacs_web", pacs_orthanc.dicomweb_node())

    check_nodes(settings, source)
    plan = query(settings, source, FILTERS, TODAY)
    retrieve(settings, source, plan.query_id)

    rows = series_rows(settings.db_url)
    for key in ("thorax", "head_neck"):
        row = rows[department[key].series_uid]
        assert (row.state, row.source, row.instance_count) == ("ready", "pacs", 4)
    assert department["topogram"].series_uid not in rows


def test_a_pacs_that_does_not_know_the_called_ae_title_fails_the_echo_clearly(
        settings, pacs_orthanc):
    node = DicomNode("127.0.0.1", pacs_orthanc.dicom_port, "NOT_ORTHANC")

    with pytest.raises(PacsError, match="PACS pacs did not answer the echo.*rejected.*called "
                                        "AE title") as failure:
        check_nodes(settings, PacsSource("pacs", node))
    assert not failure.value.transient


def test_our_listener_not_answering_stops_the_run_before_any_query(settings, pacs_orthanc):
    settings = dataclasses.replace(settings, listener_port=free_port())

    with pytest.raises(PacsError, match=r"our listener DRAWCLIENT@127.0.0.1:\d+ did not answer "
                                        r"the echo.*dicom-ops listener"):
        check_nodes(settings, PacsSource("pacs", pacs_orthanc.dicom_node()))


def test_a_pacs_that_is_down_fails_the_query_and_records_why(settings):
    source = PacsSource("pacs", DicomNode("127.0.0.1", free_port(), "PACS"))

    with pytest.raises(PacsError, match="connection failed"):
        check_nodes(settings, source)
    with pytest.raises(PacsError, match="connection failed"):
        query(settings, source, FILTERS, TODAY)
    with session_scope(settings.db_url) as session:
        recorded = session.scalars(select(PacsQuery)).one()
        assert recorded.status == "failed" and "PACS@127.0.0.1" in recorded.error


def test_a_tls_pacs_is_echoed_queried_and_retrieved_from_over_tls(settings, tls_pacs_orthanc,
                                                                 test_pki, tmp_path):
    from tests.integration.pacs.conftest import pacs_series

    tls_pacs_orthanc.clear()
    held = pacs_series(tmp_path, 23, study_date="20261201")
    tls_pacs_orthanc.upload(held.files)
    source = PacsSource("pacs_tls", tls_pacs_orthanc.dicom_node(), retrieve="get")

    check_nodes(settings, source)
    plan = query(settings, source, FILTERS, TODAY)
    assert [d.verdict for d in plan.decisions] == [Verdict.RETRIEVE]
    retrieve(settings, source, plan.query_id)  # C-GET over the same TLS association setup
    row = series_rows(settings.db_url)[held.series_uid]
    assert (row.state, row.instance_count) == ("ready", 4)

    untrusted = dataclasses.replace(tls_pacs_orthanc.dicom_node(),
                                    tls=ClientTls(ca_file=test_pki.other_ca_file))
    with pytest.raises(PacsError, match="TLS handshake failed"):
        check_nodes(settings, PacsSource("pacs_tls", untrusted, retrieve="get"))
