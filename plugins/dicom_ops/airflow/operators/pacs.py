"""Operators of the PACS query: echo, find and filter, retrieve. Each calls one function
of ``dicom_ops.pacs.run``; the connection is read by the hooks. XCom carries the query's
id only (never a UID: the series asked for are rows of ``pacs_request``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.hooks.dicom_node import fields_of
from dicom_ops.airflow.operators.jobs import redacted_errors
from dicom_ops.pacs.errors import PacsError
from dicom_ops.pacs.filters import FILTER_SETTINGS, filters_from
from dicom_ops.pacs.run import check_nodes, query, retrieve
from dicom_ops.pacs.source import PacsSource, source_from_fields

NOT_CONFIGURED = ("no PACS connection is configured (DICOM_OPS_PACS_CONN is empty): "
                  "nothing to query")
PARAMS = (*FILTER_SETTINGS, "date_from", "date_to")


def pacs_source() -> PacsSource:
    """The configured PACS; skips the task (and so the run's next steps) when there is none."""
    settings = task_settings()
    if not settings.pacs_conn:
        raise AirflowSkipException(NOT_CONFIGURED)
    try:
        return source_from_fields(fields_of(settings.pacs_conn))
    except ValueError as exc:
        raise AirflowException(str(exc)) from None


class PacsEchoOperator(BaseOperator):
    """C-ECHO the PACS (QIDO-RS for DICOMweb), then our listener when the series come
    back through it; either not answering fails the run with the node named."""

    ui_color = "#e4ecf7"

    def execute(self, context: Context) -> list[str]:
        source = pacs_source()
        try:
            checked = check_nodes(task_settings(), source)
        except PacsError as exc:
            raise AirflowException(str(exc)) from None
        self.log.info("echo OK: %s", ", ".join(checked))
        return checked


class PacsFindOperator(BaseOperator):
    """Find studies then series, filter (the run's params over the DICOM_OPS_PACS_*
    settings), skip known and arriving series, record the plan; returns the query id."""

    ui_color = "#e4ecf7"

    def execute(self, context: Context) -> int:
        settings, source = task_settings(), pacs_source()
        params = context.get("params") or {}
        try:
            filters = filters_from(settings, **{key: params.get(key) for key in PARAMS})
        except ValueError as exc:
            raise AirflowException(str(exc)) from None
        today = (context.get("logical_date") or datetime.now(UTC)).date()
        with redacted_errors("querying the PACS"):
            try:
                plan = query(settings, source, filters, today)
            except PacsError as exc:
                raise AirflowException(str(exc)) from None
        self.log.info("query #%d: %s", plan.query_id, plan.summary())
        return plan.query_id


class PacsRetrieveOperator(BaseOperator):
    """Retrieve every planned series (C-MOVE to our listener, C-GET or WADO-RS) and
    count what arrived; fails, after trying every series, if any was refused."""

    template_fields = ("query_id",)
    ui_color = "#e4ecf7"

    def __init__(self, *, query_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query_id = query_id

    def execute(self, context: Context) -> dict[str, Any]:
        settings, source = task_settings(), pacs_source()
        with redacted_errors("retrieving from the PACS"):
            try:
                report = retrieve(settings, source, int(self.query_id))
            except PacsError as exc:
                raise AirflowException(str(exc)) from None
        return {"query_id": report.query_id, "summary": report.summary}
