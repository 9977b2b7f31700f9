"""``ServiceEventTrigger``: the asset watcher of ``study_ready`` and ``rtstruct_delivered``.

Why a watcher on the app DB rather than outlets on the producing tasks: studies become
quiet in the listener and the watcher, which run outside Airflow (as ``series_ready``'s
``SeriesReadyTrigger`` already handles), and an RTSTRUCT can be delivered by more than
one path (the import's mapped task, a later run finishing a stranded delivery). Polling
the durable state every few seconds covers every producer with one mechanism, needs no
Airflow credentials in the producers, and a missed event costs nothing: a service run
claims whatever it has not taken yet.

Like ``SeriesReadyTrigger`` it never returns, yields at most one event per poll (a
burst is one event), and keeps watching through app DB outages with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from dicom_ops.airflow.triggers.blocking import run_blocking
from dicom_ops.db.session import session_scope
from dicom_ops.services.events import EventWatch

MAX_BACKOFF_SECONDS = 60.0


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
        from dicom_ops.airflow.app_settings import task_settings
        from dicom_ops.config import get_settings

        try:
            settings = task_settings()
        except Exception as exc:  # the connection lookup failed: DICOM_OPS_DB_URL is the rest
            self.log.warning("cannot read the Airflow connection dicom_ops_db (%s); using "
                             "DICOM_OPS_DB_URL", type(exc).__name__)
            settings = get_settings()
        return self.db_url or settings.db_url, settings.services_lookback_hours

    async def run(self) -> AsyncIterator[TriggerEvent]:
        url, lookback_hours = await run_blocking(self._settings)
        watch = EventWatch(self.event, timedelta(hours=lookback_hours))
        failures = 0
        while True:
            try:
                count = await run_blocking(_poll, url, watch)
                failures = 0
            except Exception as exc:  # the app DB is down or not migrated yet: keep watching
                failures += 1
                self.log.warning("cannot read the app DB (%s); retrying", type(exc).__name__)
                count = 0
            if count:
                self.log.info("%s: %d new item(s)", self.event, count)
                yield TriggerEvent({"status": "new", "event": self.event, "count": count})
            delay = self.poll_seconds * (2 ** min(failures, 6)) if failures else self.poll_seconds
            await asyncio.sleep(min(delay, MAX_BACKOFF_SECONDS))


def _poll(url: str, watch: EventWatch) -> int:
    with session_scope(url) as session:
        return len(watch.poll(session))
