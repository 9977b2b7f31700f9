"""Run records: how each job of a service ended for each item (``service_run``), with
the small dict its worker returned, for ``dicom-ops services runs``.

A job's record moves ``running -> succeeded | failed | skipped``; a job run again for
the same item (a cleared task, ``services run``) starts a fresh record in its place.
Reasons are written by dicom-ops (skips, dependency outcomes) or are the error's class
and its message with UID-like tokens and the item's identifiers replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_ops.db.models import ServiceItem, ServiceRun, utcnow

MAX_RESULT_BYTES = 16_384  # a summary, not a payload: files go in the output folder


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class ResultNotRecordable(ValueError):
    """A worker returned something that is not a small JSON object."""


def encode_result(result: Any) -> str | None:
    if result is None:
        return None
    if not isinstance(result, dict):
        raise ResultNotRecordable(f"the worker returned a {type(result).__name__}, expected "
                                  "a dict (or None)")
    try:
        text = json.dumps(result, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise ResultNotRecordable(f"the worker's result is not JSON ({exc})") from None
    if len(text.encode()) > MAX_RESULT_BYTES:
        raise ResultNotRecordable(f"the worker's result is {len(text.encode())} bytes as JSON "
                                  f"(at most {MAX_RESULT_BYTES}); write files to the output "
                                  "folder instead")
    return text


def start_run(session: Session, item_id: int, job_name: str) -> None:
    run = _run(session, item_id, job_name)
    if run is None:
        session.add(ServiceRun(item_id=item_id, job_name=job_name, status=RunStatus.RUNNING))
        return
    run.status, run.reason, run.result = RunStatus.RUNNING, None, None
    run.started_at, run.ended_at = utcnow(), None


def end_run(session: Session, item_id: int, job_name: str, status: RunStatus,
            reason: str | None = None, result: str | None = None) -> None:
    run = _run(session, item_id, job_name)
    if run is None:
        run = ServiceRun(item_id=item_id, job_name=job_name)
        session.add(run)
    run.status, run.reason, run.result, run.ended_at = status, reason, result, utcnow()


def job_statuses(session: Session, item_id: int) -> dict[str, RunStatus]:
    rows = session.execute(select(ServiceRun.job_name, ServiceRun.status)
                           .where(ServiceRun.item_id == item_id)).all()
    return {name: RunStatus(status) for name, status in rows}


def _run(session: Session, item_id: int, job_name: str) -> ServiceRun | None:
    return session.scalars(select(ServiceRun).where(ServiceRun.item_id == item_id,
                                                    ServiceRun.job_name == job_name)).first()


@dataclass(frozen=True)
class RunRow:
    service: str
    event: str
    item_id: int
    series_id: int | None
    job_id: int | None
    job_name: str
    status: str
    reason: str | None
    result: dict[str, Any] | None
    started_at: datetime
    ended_at: datetime | None


def list_runs(session: Session, service: str | None = None, limit: int = 50) -> list[RunRow]:
    """The newest records first."""
    query = (select(ServiceRun, ServiceItem).join(ServiceItem)
             .order_by(ServiceRun.started_at.desc(), ServiceRun.id.desc()).limit(limit))
    if service:
        query = query.where(ServiceItem.service == service)
    return [RunRow(item.service, item.event, item.id, item.series_id, item.job_id,
                   run.job_name, run.status, run.reason,
                   json.loads(run.result) if run.result else None, run.started_at,
                   run.ended_at)
            for run, item in session.execute(query).all()]


def summarise(session: Session, item_ids: list[int]) -> tuple[dict[str, int], list[str]]:
    """Counts by status over the items' records, and the failed ones as
    ``"<job> on item <id>: <reason>"``."""
    counts = {status.value: 0 for status in RunStatus}
    failed = []
    if not item_ids:
        return counts, failed
    for run in session.scalars(select(ServiceRun).where(ServiceRun.item_id.in_(item_ids))
                               .order_by(ServiceRun.item_id, ServiceRun.id)):
        counts[run.status] += 1
        if run.status == RunStatus.FAILED:
            failed.append(f"{run.job_name} on item {run.item_id}: {run.reason}")
    return counts, failed
