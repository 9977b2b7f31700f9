"""dcmtk's dcmqrscp as a second Q/R SCP: C-FIND and C-MOVE to our listener, and a move
that partly fails (a file gone from its archive): counted, asked for again next run,
nothing stored twice."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest
from dicom_ops.db.models import PacsQuery, PacsRequest
from dicom_ops.db.session import session_scope
from dicom_ops.pacs.filters import QueryFilters
from dicom_ops.pacs.run import check_nodes, query, retrieve
from dicom_ops.pacs.source import PacsSource
from sqlalchemy import select

from tests.integration.pacs.conftest import pacs_series
from tests.support.listener import files_under, series_rows, wait_ready, wait_until

pytestmark = pytest.mark.dcmtk
TODAY = date(2026, 12, 2)
FILTERS = QueryFilters(days_back=3)


def test_series_are_found_and_moved_from_dcmqrscp(settings, tmp_path, start_listener,
                                                  start_dcmqrscp):
    held = pacs_series(tmp_path / "archive", 30, study_date="20261201")
    listener = start_listener()
    pacs = start_dcmqrscp(held.files, {settings.ae_title: listener.port})
    settings = dataclasses.replace(settings, listener_port=listener.port)
    source = PacsSource("dcmqrscp", pacs.node)

    check_nodes(settings, source)
    plan = query(settings, source, FILTERS, TODAY)
    report = retrieve(settings, source, plan.query_id)

    row = wait_ready(settings.db_url, [held.series_uid])[held.series_uid]
    assert (row.source, row.instance_count) == ("pacs", 4)
    assert "1 requested, 4 instances received, 0 failed" in report.summary


def test_a_partly_failed_move_is_counted_and_asked_for_again_without_duplicates(
        settings, tmp_path, start_listener, start_dcmqrscp):
    # given an archive that lost one file of a four-image series
    held = pacs_series(tmp_path / "archive", 31, study_date="20261201")
    listener = start_listener()
    pacs = start_dcmqrscp(held.files, {settings.ae_title: listener.port})
    settings = dataclasses.replace(settings, listener_port=listener.port)
    source = PacsSource("dcmqrscp", pacs.node)
    lost = held.files[2]
    kept_bytes = lost.read_bytes()
    lost.unlink()

    # when the query moves the series
    first = query(settings, source, FILTERS, TODAY)
    report = retrieve(settings, source, first.query_id)

    # then three instances arrived, one failed, and the run says so
    assert "3 instances received, 1 failed, 1 series to ask again" in report.summary
    with session_scope(settings.db_url) as session:
        request = session.scalars(select(PacsRequest)).one()
        assert (request.state, request.completed, request.failed) == ("partial", 3, 1)
    wait_until(lambda: series_rows(settings.db_url)[held.series_uid].state == "ready", 30)

    # when the file is back and the next run comes
    lost.write_bytes(kept_bytes)
    second = query(settings, source, FILTERS, TODAY)
    [decision] = second.decisions
    assert decision.retrieve and decision.reason.startswith("asked again: query #")
    retrieve(settings, source, second.query_id)

    # then the whole series is there, each instance once
    wait_until(lambda: series_rows(settings.db_url)[held.series_uid].instance_count == 4, 30)
    row = wait_ready(settings.db_url, [held.series_uid])[held.series_uid]
    assert len(files_under(Path(row.folder))) == 4
    with session_scope(settings.db_url) as session:
        assert session.get(PacsQuery, second.query_id).received_instances == 4
        states = [r.state for r in session.scalars(select(PacsRequest).order_by(PacsRequest.id))]
        assert states == ["partial", "received"]

    # and the run after that asks for nothing
    third = query(settings, source, FILTERS, TODAY)
    assert [d.verdict.value for d in third.decisions] == ["known"]
