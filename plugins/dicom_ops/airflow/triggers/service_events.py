"""``ServiceEventTrigger``: the asset watcher of ``study_ready`` and ``rtstruct_delivered``.

Why a watcher on the app DB rather than outlets on the producing tasks: studies become
quiet in the listener and the watcher, which run outside Airflow (as ``series_ready``'s
``SeriesReadyTrigger`` already handles), and an RTSTRUCT can be delivered by more than
one path (the import's mapped task, a later run finishing a stranded delivery). Polling
the durable state every few seconds covers every producer with one mechanism, needs no
Airflow credentials in the producers, and a missed event costs nothing: a service run
claims whatever it has not taken yet.

Like ``SeriesReadyTrigger`` it never returns, yields at most one event per poll (a
burst is one event), and keeps watching through app DB outages with backoff: both run
``app_db_watch.poll_forever``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from dicom_ops.airflow.triggers.app_db_watch import app_db_settings, poll_forever
from dicom_ops.airflow.triggers.blocking import run_blocking
from dicom_ops.db.session import session_scope
from dicom_ops.services.events import EventWatch


class ServiceEventTrigger(BaseEventTrigger):
    def __init__(self, event: str, poll_seconds: float = 5.0, db_url: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.event = event
        self.poll_seconds = poll_seconds
        self.db_url = db_url  # None: the installation's app DB (tests pass one)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"event": self.event, "poll_seconds": self.poll_seconds, "db_url": self.db_url})

    def _settings(self) -> tuple[str, int]:
        settings = app_db_settings(self.log)
        return self.db_url or settings.db_url, settings.services_lookback_hours

    async def run(self) -> AsyncIterator[TriggerEvent]:
        url, lookback_hours = await run_blocking(self._settings)
        poll = partial(_poll, url, EventWatch(self.event, timedelta(hours=lookback_hours)))
        async for count in poll_forever(poll, self.poll_seconds, self.log, empty=0):
            if count:
                self.log.info("%s: %d new item(s)", self.event, count)
                yield TriggerEvent({"status": "new", "event": self.event, "count": count})


def _poll(url: str, watch: EventWatch) -> int:
    with session_scope(url) as session:
        return len(watch.poll(session))
