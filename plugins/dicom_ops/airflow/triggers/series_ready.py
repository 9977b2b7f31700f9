"""``SeriesReadyTrigger``: an asset watcher that fires when series become ready.

It runs in the Airflow triggerer for as long as a DAG is scheduled on the
``SERIES_READY`` asset (see ``dicom_ops.airflow.assets``). Every ``poll_seconds``
it asks the app DB which series became ready (one indexed query, in a worker
thread so the triggerer's event loop never blocks) and yields one event per poll
that found any, so a burst of ready series becomes one asset event, not a storm.

It never returns: a watcher trigger that returns is started again by the
triggerer, which would re-announce everything still waiting. On a triggerer
restart it starts fresh and announces, once, the series waiting in ``ready``;
nothing that became ready meanwhile is lost, and the export DAG's atomic claim
makes an extra run harmless. An unreachable app DB is logged and retried with
backoff; it never ends the watch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from dicom_ops.airflow.triggers.blocking import run_blocking
from dicom_ops.db.session import session_scope
from dicom_ops.intake.readiness import ReadinessWatch

MAX_SERIES_IDS_IN_EVENT = 100
MAX_BACKOFF_SECONDS = 60.0


class SeriesReadyTrigger(BaseEventTrigger):
    def __init__(self, poll_seconds: float = 2.0, db_url: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.poll_seconds = poll_seconds
        self.db_url = db_url  # None: the app DB of the installation (tests pass one)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"poll_seconds": self.poll_seconds, "db_url": self.db_url})

    def _app_db_url(self) -> str:
        if self.db_url:
            return self.db_url
        from dicom_ops.airflow.app_settings import task_settings
        from dicom_ops.config import get_settings

        try:
            return task_settings().db_url
        except Exception as exc:  # the connection lookup failed: DICOM_OPS_DB_URL is the rest
            self.log.warning("cannot read the Airflow connection dicom_ops_db (%s); using "
                             "DICOM_OPS_DB_URL", type(exc).__name__)
            return get_settings().db_url

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = ReadinessWatch()
        url = await run_blocking(self._app_db_url)  # may look up an Airflow connection
        failures = 0
        while True:
            try:
                new = await run_blocking(_poll, url, watch)
                failures = 0
            except Exception as exc:  # the app DB is down or not migrated yet: keep watching
                failures += 1
                self.log.warning("cannot read the app DB (%s); retrying", type(exc).__name__)
                new = []
            if new:
                self.log.info("%d series ready: %s", len(new), new[:MAX_SERIES_IDS_IN_EVENT])
                yield TriggerEvent({"status": "ready", "count": len(new),
                                    "series_ids": new[:MAX_SERIES_IDS_IN_EVENT]})
            delay = self.poll_seconds * (2 ** min(failures, 6)) if failures else self.poll_seconds
            await asyncio.sleep(min(delay, MAX_BACKOFF_SECONDS))


def _poll(url: str, watch: ReadinessWatch) -> list[int]:
    with session_scope(url) as session:
        return watch.poll(session)
