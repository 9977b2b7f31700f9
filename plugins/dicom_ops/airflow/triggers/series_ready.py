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
backoff; it never ends the watch (the loop is ``app_db_watch.poll_forever``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from dicom_ops.airflow.triggers.app_db_watch import app_db_settings, poll_forever
from dicom_ops.airflow.triggers.blocking import run_blocking
from dicom_ops.db.session import session_scope
from dicom_ops.intake.readiness import ReadinessWatch

MAX_SERIES_IDS_IN_EVENT = 100


class SeriesReadyTrigger(BaseEventTrigger):
    def __init__(self, poll_seconds: float = 2.0, db_url: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.poll_seconds = poll_seconds
        self.db_url = db_url  # None: the app DB of the installation (tests pass one)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"poll_seconds": self.poll_seconds, "db_url": self.db_url})

    def _app_db_url(self) -> str:
        return self.db_url or app_db_settings(self.log).db_url

    async def run(self) -> AsyncIterator[TriggerEvent]:
        url = await run_blocking(self._app_db_url)  # may look up an Airflow connection
        poll = partial(_poll, url, ReadinessWatch())
        async for new in poll_forever(poll, self.poll_seconds, self.log, empty=[]):
            if new:
                self.log.info("%d series ready: %s", len(new), new[:MAX_SERIES_IDS_IN_EVENT])
                yield TriggerEvent({"status": "ready", "count": len(new),
                                    "series_ids": new[:MAX_SERIES_IDS_IN_EVENT]})


def _poll(url: str, watch: ReadinessWatch) -> list[int]:
    with session_scope(url) as session:
        return watch.poll(session)
