"""Event items: what a service runs on, found in the app DB by time.

- ``series_ready``: a series that became ready (``series.ready_at``); sent again, it is
  a new item (a new ``ready_at``).
- ``study_ready``: a study none of whose series is still receiving, stamped with its
  newest series' ``ready_at``; a study that gets another series later is a new item.
- ``rtstruct_delivered``: a job whose RTSTRUCT was delivered (``transfer.delivered_at``).

Every question is bounded by a time window (``since``) on an indexed column, so its
cost follows the recent traffic, not the size of the datastore. ``EventWatch`` (the
assets' watchers) reports items it has not reported before; ``claim_items`` (a
service's run) records each item once per service, so an extra event or run is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dicom_ops.db.models import JobSeries, Series, ServiceItem, Transfer, utcnow
from dicom_ops.intake.series_lifecycle import is_receiving
from dicom_ops.services.definition import ServiceEvent

OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True)
class EventItem:
    event: ServiceEvent
    item_key: str  # series id, job id, or Study Instance UID: never leaves the app DB
    stamp: datetime
    series_id: int | None = None
    job_id: int | None = None


def recent_items(session: Session, event: ServiceEvent | str, since: datetime
                 ) -> list[EventItem]:
    """Items of ``event`` stamped at or after ``since``, oldest first."""
    event = ServiceEvent(event)
    if event is ServiceEvent.SERIES_READY:
        rows = session.execute(
            select(Series.id, Series.ready_at)
            .where(Series.ready_at >= since, ~is_receiving.clause)
            .order_by(Series.ready_at, Series.id)).all()
        return [EventItem(event, str(sid), stamp, series_id=sid) for sid, stamp in rows]
    if event is ServiceEvent.STUDY_READY:
        return _quiet_studies(session, since)
    rows = session.execute(
        select(Transfer.job_id, Transfer.delivered_at, func.min(JobSeries.series_id))
        .join(JobSeries, JobSeries.job_id == Transfer.job_id, isouter=True)
        .where(Transfer.delivered_at >= since)
        .group_by(Transfer.job_id, Transfer.delivered_at)
        .order_by(Transfer.delivered_at, Transfer.job_id)).all()
    return [EventItem(event, str(job_id), stamp, series_id=series_id, job_id=job_id)
            for job_id, stamp, series_id in rows]


def _quiet_studies(session: Session, since: datetime) -> list[EventItem]:
    recent = select(Series.study_uid).where(Series.ready_at >= since).distinct()
    rows = session.execute(
        select(Series.study_uid, func.max(Series.ready_at), func.min(Series.id),
               func.count(Series.id).filter(is_receiving.clause))
        .where(Series.study_uid.in_(recent))
        .group_by(Series.study_uid)).all()
    items = [EventItem(ServiceEvent.STUDY_READY, study_uid, stamp, series_id=first)
             for study_uid, stamp, first, receiving in rows
             if not receiving and stamp is not None]
    return sorted(items, key=lambda item: (item.stamp, item.series_id or 0))


class EventWatch:
    """Which items of one event are new since the last poll (the assets' watchers).

    The first poll reports everything of the window: after a triggerer restart, what
    happened meanwhile is announced once, not lost. Then each poll looks back only from
    the newest stamp seen, less an overlap for writers that commit out of order."""

    def __init__(self, event: ServiceEvent | str, window: timedelta,
                 overlap: timedelta = OVERLAP) -> None:
        self.event = ServiceEvent(event)
        self.window = window
        self.overlap = overlap
        self._reported: set[tuple[str, datetime]] = set()
        self._horizon: datetime | None = None

    def poll(self, session: Session) -> list[EventItem]:
        since = (utcnow() - self.window if self._horizon is None
                 else self._horizon - self.overlap)
        items = recent_items(session, self.event, since)
        new = [item for item in items if (item.item_key, item.stamp) not in self._reported]
        self._reported = {(item.item_key, item.stamp) for item in items}
        if items:
            newest = max(item.stamp for item in items)
            self._horizon = newest if self._horizon is None else max(self._horizon, newest)
        return new


def claim_items(session: Session, service: str, event: ServiceEvent | str,
                since: datetime, limit: int = 100) -> list[int]:
    """Record the items of ``event`` since ``since`` that ``service`` has not taken yet;
    returns their ``service_item`` ids (at most ``limit``, oldest first; the rest wait
    for the next run). Two runs racing for an item: the unique key gives it to one."""
    taken = set(session.execute(
        select(ServiceItem.item_key, ServiceItem.stamp)
        .where(ServiceItem.service == service, ServiceItem.event == str(event),
               ServiceItem.stamp >= since)).all())
    claimed: list[int] = []
    for item in recent_items(session, event, since):
        if len(claimed) >= limit:
            break
        if (item.item_key, item.stamp) in taken:
            continue
        claimed_id = _claim(session, service, item)
        if claimed_id is not None:
            claimed.append(claimed_id)
    return claimed


def claim_item(session: Session, service: str, item: EventItem) -> int:
    """Record one item for ``service`` now (``dicom-ops services run``)."""
    claimed = _claim(session, service, item)
    if claimed is None:
        raise ValueError(f"service {service!r} has taken this {item.event} item already")
    return claimed


def _claim(session: Session, service: str, item: EventItem) -> int | None:
    row = ServiceItem(service=service, event=str(item.event), item_key=item.item_key,
                      stamp=item.stamp, series_id=item.series_id, job_id=item.job_id)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row.id


def item_now(session: Session, event: ServiceEvent | str, *, series_uid: str | None = None,
             study_uid: str | None = None, job_id: int | None = None) -> EventItem:
    """An item for a run asked for by hand, stamped now (so it is a new item even when a
    DAG run took the same series before). Raises LookupError naming what is missing."""
    event = ServiceEvent(event)
    now = utcnow()
    if event is ServiceEvent.RTSTRUCT_DELIVERED:
        if job_id is None:
            raise LookupError("rtstruct_delivered jobs run on a delivered job: give --job ID")
        transfer = session.scalars(select(Transfer).where(Transfer.job_id == job_id)).first()
        if transfer is None or transfer.delivered_at is None:
            raise LookupError(f"job {job_id} has no delivered RTSTRUCT")
        first = session.scalars(select(JobSeries.series_id).where(JobSeries.job_id == job_id)
                                .order_by(JobSeries.position)).first()
        return EventItem(event, str(job_id), now, series_id=first, job_id=job_id)
    if event is ServiceEvent.STUDY_READY:
        if study_uid is None and series_uid is not None:
            series = session.scalars(select(Series).where(Series.series_uid == series_uid)).first()
            study_uid = series.study_uid if series else None
        first = session.scalars(select(Series.id).where(Series.study_uid == study_uid)
                                .order_by(Series.id)).first() if study_uid else None
        if first is None:
            raise LookupError("no series of that study in the app DB")
        return EventItem(event, study_uid, now, series_id=first)
    if series_uid is None:
        raise LookupError("series_ready jobs run on a series: give --series UID")
    series_id = session.scalars(select(Series.id).where(Series.series_uid == series_uid)).first()
    if series_id is None:
        raise LookupError("no series with that Series Instance UID in the app DB "
                          "(`dicom-ops series list`)")
    return EventItem(event, str(series_id), now, series_id=series_id)
