"""The PACS query's steps as plain functions: check both nodes, query and plan, then
retrieve what was planned. ``dicom_ops.airflow.operators.pacs`` and ``dicom-ops pacs``
call these and nothing else.

Series retrieved by C-MOVE arrive through our listener like any push and are marked
``pacs`` once the move is done; series retrieved by C-GET or WADO-RS land in a folder
under ``<data root>/pacs/`` and are registered by folder intake with source ``pacs``.
Either way intake, readiness and export take them as if they had been pushed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from dicom_ops.config import Settings
from dicom_ops.db.audit import record_event
from dicom_ops.db.session import session_scope
from dicom_ops.delivery.cstore import DicomNode
from dicom_ops.intake.folder_intake import register_folder
from dicom_ops.intake.series_registry import mark_source
from dicom_ops.pacs import dimse, records
from dicom_ops.pacs.errors import PacsError
from dicom_ops.pacs.filters import QueryFilters
from dicom_ops.pacs.found import FoundSeries
from dicom_ops.pacs.plan import Decision, Verdict, decide
from dicom_ops.pacs.source import PacsSource

log = logging.getLogger(__name__)
SOURCE = "pacs"
ACTOR = "pacs_query"


@dataclass
class QueryPlan:
    query_id: int | None  # None for a dry run: nothing recorded
    studies_found: int
    studies_queried: int
    decisions: list[Decision] = field(default_factory=list)

    def count(self, verdict: Verdict) -> int:
        return sum(1 for d in self.decisions if d.verdict is verdict)

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(v)} {v.value}" for v in Verdict if self.count(v))
        tail = (f"; {self.studies_found - self.studies_queried} more studies not looked into "
                "(limit reached)" if self.studies_queried < self.studies_found else "")
        return (f"{self.studies_found} studies, {len(self.decisions)} series: "
                f"{counts or 'nothing'}{tail}")


def listener_node(settings: Settings) -> DicomNode:
    """Our own listener, as the PACS must reach it (a wildcard bind is echoed on loopback)."""
    host = settings.listener_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return DicomNode(host, settings.listener_port, settings.ae_title)


def check_nodes(settings: Settings, source: PacsSource) -> list[str]:
    """Echo the PACS, then our listener when series come back through it. Raises
    ``PacsError`` naming the node that did not answer; returns what was checked."""
    try:
        source.echo(settings.ae_title)
    except PacsError as exc:
        raise PacsError(f"PACS {source.name} did not answer the echo: {exc}",
                        transient=exc.transient) from exc
    checked = [f"PACS {source}"]
    if source.arrives_through_listener:
        listener = listener_node(settings)
        try:
            dimse.echo(listener, settings.ae_title)
        except PacsError as exc:
            raise PacsError(f"our listener {listener} did not answer the echo, so the PACS "
                            f"could not send the series to it (is `dicom-ops listener` "
                            f"running?): {exc}") from exc
        checked.append(f"listener {listener}")
    return checked


def query(settings: Settings, source: PacsSource, filters: QueryFilters, today: date, *,
          dry_run: bool = False) -> QueryPlan:
    """C-FIND (or QIDO-RS) studies in the date range, oldest first, then their series
    study by study until ``max_series`` are chosen; decide for each. A real run records
    the query and its planned requests; a dry run records nothing."""
    query_id = None
    if not dry_run:
        with session_scope(settings.db_url) as session:
            query_id = records.start_query(session, source.name, filters)
    try:
        plan = _plan(settings, source, filters, today, query_id)
    except Exception as exc:
        if query_id is not None:
            with session_scope(settings.db_url) as session:
                records.finish_query(session, query_id, error=_safe(exc))
        raise
    if query_id is not None:
        with session_scope(settings.db_url) as session:
            records.record_plan(session, query_id, plan.studies_found, plan.decisions)
    log.info("PACS %s: %s", source.name, plan.summary())
    return plan


def _plan(settings: Settings, source: PacsSource, filters: QueryFilters, today: date,
          query_id: int | None) -> QueryPlan:
    studies = source.find_studies(settings.ae_title, filters.study_date_key(today))
    studies.sort(key=lambda s: (s.study_date or "99999999", s.study_time, s.study_uid))
    plan = QueryPlan(query_id, studies_found=len(studies), studies_queried=0)
    room = filters.max_series
    batches = source.find_series(settings.ae_title, studies)
    try:
        for batch in batches:
            plan.studies_queried += 1
            with session_scope(settings.db_url) as session:
                priors = records.prior_states(session, [s.series_uid for s in batch
                                                        if s.series_uid])
            decisions = decide(batch, filters, priors, room)
            room -= sum(1 for d in decisions if d.retrieve)
            plan.decisions.extend(decisions)
            if room <= 0:
                break
    finally:
        close = getattr(batches, "close", None)
        if close:
            close()  # releases the association of a query stopped early
    return plan


@dataclass(frozen=True)
class RetrieveReport:
    query_id: int
    summary: str
    failed: int  # series the PACS refused outright


def retrieve(settings: Settings, source: PacsSource, query_id: int) -> RetrieveReport:
    """Retrieve every series the query step planned, one at a time; one series failing
    does not stop the others. Raises ``PacsError`` at the end if any was refused."""
    with session_scope(settings.db_url) as session:
        planned = [(r.id, FoundSeries(r.study_uid, r.series_uid, "", "", "", "", "", "", None,
                                      r.expected_instances))
                   for r in records.planned_requests(session, query_id)]
    failed = 0
    for request_id, series in planned:
        with session_scope(settings.db_url) as session:
            records.mark_requested(session, request_id)
        folder = settings.data_root / "pacs" / f"query-{query_id}" / f"request-{request_id}"
        try:
            outcome = source.fetch(settings.ae_title, series, listener_aet=settings.ae_title,
                                   folder=folder)
        except PacsError as exc:
            failed += 1
            with session_scope(settings.db_url) as session:
                records.record_outcome(session, request_id, None, error=str(exc))
            log.warning("query #%d, request #%d: %s", query_id, request_id, exc)
            continue
        _hand_to_intake(settings, source, series, folder)
        with session_scope(settings.db_url) as session:
            state = records.record_outcome(session, request_id, outcome)
        log.info("query #%d, request #%d: %s %d instance(s) received, %d failed (%s)",
                 query_id, request_id, source.method, outcome.completed, outcome.failed, state)
    with session_scope(settings.db_url) as session:
        error = (f"{failed} of {len(planned)} series could not be retrieved; the next run "
                 "asks for them again" if failed else None)
        row = records.finish_query(session, query_id, error=error)
        text = records.summary(row)
        record_event(session, "pacs_query", text, actor=ACTOR)
    log.info("%s", text)
    if failed:
        raise PacsError(text)
    return RetrieveReport(query_id, text, failed)


def _hand_to_intake(settings: Settings, source: PacsSource, series: FoundSeries,
                    folder: Path) -> None:
    if source.arrives_through_listener:
        with session_scope(settings.db_url) as session:
            if not mark_source(session, series.series_uid, SOURCE):
                log.warning("a C-MOVE from %s completed but the listener recorded none of "
                            "the series: check that the PACS sends to %s", source.name,
                            settings.ae_title)
        return
    if folder.is_dir() and any(folder.iterdir()):
        register_folder(settings, settings.db_url, folder, source=SOURCE)


def _safe(exc: Exception) -> str:
    """Our PACS errors name nodes and statuses only; anything else by its class."""
    return str(exc) if isinstance(exc, PacsError) else type(exc).__name__
