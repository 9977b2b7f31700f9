"""The app DB's memory of PACS queries (``pacs_query``) and of each series asked for
(``pacs_request``): what earlier runs leave for the next one to skip or ask again, and
``dicom-ops pacs history``. A request moves planned -> requested -> received | partial
| failed, here and nowhere else."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicom_ops.db.models import PacsQuery, PacsRequest, Series, utcnow
from dicom_ops.pacs.dimse import RetrieveOutcome
from dicom_ops.pacs.filters import QueryFilters
from dicom_ops.pacs.plan import Decision, Prior, Verdict

# A request still "requested" this long after it was made is taken as lost (a run that
# died mid-retrieve) and asked again; under it, the series counts as still arriving.
ARRIVING_FOR = timedelta(hours=2)
_CHUNK = 500


def prior_states(session: Session, series_uids: Iterable[str]) -> dict[str, Prior]:
    """For each series UID: known to intake, still arriving, or to be asked again."""
    uids = list(dict.fromkeys(series_uids))
    priors: dict[str, Prior] = {}
    for start in range(0, len(uids), _CHUNK):
        chunk = uids[start:start + _CHUNK]
        latest = {row.series_uid: row for row in session.scalars(
            select(PacsRequest).where(PacsRequest.id.in_(
                select(func.max(PacsRequest.id)).where(PacsRequest.series_uid.in_(chunk),
                                                       PacsRequest.state != "planned")
                .group_by(PacsRequest.series_uid))))}
        known = {row.series_uid: row for row in session.scalars(
            select(Series).where(Series.series_uid.in_(chunk)))}
        for uid in chunk:
            request, series = latest.get(uid), known.get(uid)
            if request is not None and request.state in ("partial", "failed"):
                priors[uid] = Prior(Verdict.RETRIEVE, f"asked again: query #{request.query_id} "
                                    f"got {request.completed} instance(s), {request.failed} "
                                    f"failed ({request.state})")
            elif series is not None:
                priors[uid] = Prior(Verdict.KNOWN, f"already in the app DB (series "
                                    f"#{series.id}, from {series.source}, {series.state})")
            elif (request is not None and request.state == "requested"
                  and request.requested_at and utcnow() - request.requested_at < ARRIVING_FOR):
                priors[uid] = Prior(Verdict.ARRIVING, f"requested by query #{request.query_id}"
                                    " and still arriving")
    return priors


def start_query(session: Session, pacs: str, filters: QueryFilters) -> int:
    row = PacsQuery(pacs=pacs, filters=filters.model_dump_json(), status="running")
    session.add(row)
    session.flush()
    return row.id


def record_plan(session: Session, query_id: int, studies_found: int,
                decisions: list[Decision]) -> None:
    """The counts of the query step, and a ``planned`` request per series to retrieve."""
    query = session.get(PacsQuery, query_id)
    counts = {verdict: 0 for verdict in Verdict}
    for decision in decisions:
        counts[decision.verdict] += 1
        if decision.retrieve:
            session.add(PacsRequest(query_id=query_id, study_uid=decision.series.study_uid,
                                    series_uid=decision.series.series_uid, state="planned",
                                    expected_instances=decision.series.instance_count,
                                    detail=decision.reason))
    query.studies_found = studies_found
    query.series_found = len(decisions)
    query.filtered = counts[Verdict.FILTERED]
    query.known = counts[Verdict.KNOWN] + counts[Verdict.ARRIVING]
    query.over_limit = counts[Verdict.OVER_LIMIT]
    query.unusable = counts[Verdict.UNUSABLE]


def planned_requests(session: Session, query_id: int) -> list[PacsRequest]:
    return list(session.scalars(select(PacsRequest).where(
        PacsRequest.query_id == query_id, PacsRequest.state == "planned")
        .order_by(PacsRequest.id)))


def mark_requested(session: Session, request_id: int) -> None:
    request = session.get(PacsRequest, request_id)
    request.state = "requested"
    request.requested_at = utcnow()


def record_outcome(session: Session, request_id: int, outcome: RetrieveOutcome | None,
                   error: str | None = None) -> str:
    """Settle one request; returns its new state."""
    request = session.get(PacsRequest, request_id)
    query = session.get(PacsQuery, request.query_id)
    request.finished_at = utcnow()
    if outcome is None:
        request.state, request.detail = "failed", error
        query.failed_series += 1
        return request.state
    request.completed, request.failed, request.warning = (outcome.completed, outcome.failed,
                                                          outcome.warning)
    request.state = "partial" if outcome.partial else "received"
    request.detail = outcome.detail or None
    query.requested += 1
    query.received_instances += outcome.completed
    query.failed_instances += outcome.failed
    if outcome.partial:
        query.failed_series += 1
    return request.state


def finish_query(session: Session, query_id: int, error: str | None = None) -> PacsQuery:
    query = session.get(PacsQuery, query_id)
    query.finished_at = utcnow()
    query.status = "failed" if error else "done"
    query.error = error
    return query


def summary(query: PacsQuery) -> str:
    """One line a person reads in the task log and in ``pacs history``."""
    return (f"query #{query.id} ({query.pacs}, {query.status}): {query.studies_found} studies, "
            f"{query.series_found} series found; {query.filtered} filtered, {query.known} "
            f"known or arriving, {query.over_limit} over the limit, {query.unusable} without "
            f"UID; {query.requested} requested, {query.received_instances} instances "
            f"received, {query.failed_instances} failed"
            + (f", {query.failed_series} series to ask again" if query.failed_series else "")
            + (f"; error: {query.error}" if query.error else ""))


def history(session: Session, limit: int = 20) -> list[dict[str, object]]:
    rows = session.scalars(select(PacsQuery).order_by(PacsQuery.id.desc()).limit(limit))
    return [{"id": q.id, "pacs": q.pacs, "status": q.status,
             "started_at": q.started_at.isoformat(timespec="seconds"),
             "finished_at": q.finished_at.isoformat(timespec="seconds") if q.finished_at
             else None,
             "filters": json.loads(q.filters), "studies_found": q.studies_found,
             "series_found": q.series_found, "filtered": q.filtered, "known": q.known,
             "over_limit": q.over_limit, "unusable": q.unusable, "requested": q.requested,
             "received_instances": q.received_instances,
             "failed_instances": q.failed_instances, "failed_series": q.failed_series,
             "error": q.error, "summary": summary(q)} for q in rows]
