"""The one poll loop of our asset watchers (``SeriesReadyTrigger``, ``ServiceEventTrigger``).

Both watch durable state in the app DB rather than events from its producers, which run
outside Airflow. They share how: the app DB's settings are read once (the Airflow
connection ``dicom_ops_db``, else ``DICOM_OPS_DB_URL``), each poll is one blocking
query in the loop's thread pool (``blocking.run_blocking``), and an unreachable or not
yet migrated app DB is logged and retried with doubling delays up to a minute: it never
ends the watch, since a watcher trigger that returns is started again by the triggerer
and would announce everything still waiting once more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from dicom_ops.airflow.triggers.blocking import run_blocking
from dicom_ops.config import Settings

MAX_BACKOFF_SECONDS = 60.0
T = TypeVar("T")


def app_db_settings(log: logging.Logger) -> Settings:
    """The installation's settings, the app DB's URL from the Airflow connection when it
    can be read (blocking: call it through ``run_blocking``)."""
    from dicom_ops.airflow.app_settings import task_settings
    from dicom_ops.config import get_settings

    try:
        return task_settings()
    except Exception as exc:  # the connection lookup failed: DICOM_OPS_DB_URL is the rest
        log.warning("cannot read the Airflow connection dicom_ops_db (%s); using "
                    "DICOM_OPS_DB_URL", type(exc).__name__)
        return get_settings()


def backoff_seconds(poll_seconds: float, failures: int) -> float:
    """The wait before the next poll after ``failures`` failed polls in a row."""
    return min(poll_seconds * 2 ** min(failures, 6), MAX_BACKOFF_SECONDS)


async def poll_forever(poll: Callable[[], T], poll_seconds: float, log: logging.Logger,
                       *, empty: T) -> AsyncIterator[T]:
    """Yield what each ``poll()`` (blocking) returns, every ``poll_seconds``; a failed
    poll yields ``empty`` and is retried with backoff. Never ends."""
    failures = 0
    while True:
        try:
            found = await run_blocking(poll)
            failures = 0
        except Exception as exc:  # the app DB is down or not migrated yet: keep watching
            failures += 1
            log.warning("cannot read the app DB (%s); retrying", type(exc).__name__)
            found = empty
        yield found
        await asyncio.sleep(backoff_seconds(poll_seconds, failures))
