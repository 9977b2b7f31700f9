"""Which series became ready since we last looked: the cheap question the export asks.

``ReadinessWatch.poll`` runs one indexed query on ``series (state, ready_at)``
and returns the ids of ready series it has not reported before. It remembers
what it reported (id and ``ready_at``) only for a sliding window, so memory and
query cost stay small; the window's overlap absorbs writers whose transactions
commit out of ``ready_at`` order. A series sent again gets a new ``ready_at`` and
is reported again. The first poll reports every series waiting in ``ready``:
after a restart, what became ready meanwhile is announced once, not lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dicom_ops.db.models import Series
from dicom_ops.intake.series_lifecycle import awaits_planning

OVERLAP = timedelta(minutes=5)


class ReadinessWatch:
    def __init__(self, overlap: timedelta = OVERLAP) -> None:
        self.overlap = overlap
        self._reported: dict[int, datetime | None] = {}
        self._horizon: datetime | None = None  # newest ready_at seen

    def poll(self, session: Session) -> list[int]:
        """Ids of series that became ready since the last poll, oldest first."""
        query = select(Series.id, Series.ready_at).where(awaits_planning.clause)
        if self._horizon is not None:
            query = query.where(or_(Series.ready_at >= self._horizon - self.overlap,
                                    Series.ready_at.is_(None)))
        rows = session.execute(query.order_by(Series.ready_at, Series.id)).all()
        new = [series_id for series_id, ready_at in rows
               if series_id not in self._reported or self._reported[series_id] != ready_at]
        self._reported = dict(rows)
        stamps = [ready_at for _, ready_at in rows if ready_at is not None]
        if stamps:
            newest = max(stamps)
            self._horizon = newest if self._horizon is None else max(self._horizon, newest)
        return new
