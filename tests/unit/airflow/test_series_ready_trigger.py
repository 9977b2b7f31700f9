"""Readiness reaching Airflow: the asset watcher's trigger, run with asyncio on a real app DB."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dicom_ops.airflow.assets import SERIES_READY
from dicom_ops.airflow.triggers.series_ready import SeriesReadyTrigger
from dicom_ops.db.models import Series, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.intake.readiness import ReadinessWatch


def add_series(db_url: str, number: int, *, state: str = "ready", ago: float = 0.0) -> int:
    with session_scope(db_url) as session:
        series = Series(study_uid="1.2.3", series_uid=f"1.2.3.{number}", folder=f"/x/{number}",
                        source="scp", state=state,
                        ready_at=utcnow() - timedelta(seconds=ago) if state == "ready" else None)
        session.add(series)
        session.flush()
        return series.id


def set_state(db_url: str, series_id: int, state: str) -> None:
    with session_scope(db_url) as session:
        series = session.get(Series, series_id)
        series.state = state
        if state == "ready":
            series.ready_at = utcnow()


class Events:
    """Run a trigger's ``run()`` as the triggerer does (one long-lived task); read its events."""

    def __init__(self, trigger: SeriesReadyTrigger) -> None:
        self.trigger = trigger

    async def _pump(self) -> None:
        async for event in self.trigger.run():
            await self.queue.put(event)

    def next(self, timeout: float = 5.0):
        return self.loop.run_until_complete(asyncio.wait_for(self.queue.get(), timeout))

    def none_within(self, seconds: float) -> bool:
        try:
            self.next(timeout=seconds)
        except TimeoutError:
            return True
        return False

    def __enter__(self) -> Events:
        self.loop = asyncio.new_event_loop()
        self.queue = asyncio.Queue()
        self.task = self.loop.create_task(self._pump())
        return self

    def __exit__(self, *exc) -> None:
        self.task.cancel()
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        assert not self.task.done() or self.task.cancelled(), "the trigger returned or raised"
        self.loop.close()


def test_one_event_per_batch_of_newly_ready_series_and_none_while_nothing_changes(db_url):
    trigger = SeriesReadyTrigger(poll_seconds=0.05, db_url=db_url)
    with Events(trigger) as events:
        assert events.none_within(0.3)

        first = add_series(db_url, 1)
        second = add_series(db_url, 2)
        event = events.next()

        assert event.payload == {"status": "ready", "count": 2, "series_ids": [first, second]}
        assert events.none_within(0.3)  # still ready, already announced: no storm

        third = add_series(db_url, 3)
        assert events.next().payload["series_ids"] == [third]


def test_series_still_receiving_or_already_claimed_are_not_announced(db_url):
    receiving = add_series(db_url, 1, state="receiving")
    trigger = SeriesReadyTrigger(poll_seconds=0.05, db_url=db_url)
    with Events(trigger) as events:
        assert events.none_within(0.3)

        set_state(db_url, receiving, "ready")
        assert events.next().payload["series_ids"] == [receiving]
        set_state(db_url, receiving, "claimed")
        assert events.none_within(0.3)


def test_a_series_ready_again_after_a_new_round_is_announced_again(db_url):
    series_id = add_series(db_url, 1, ago=10)
    trigger = SeriesReadyTrigger(poll_seconds=0.05, db_url=db_url)
    with Events(trigger) as events:
        assert events.next().payload["series_ids"] == [series_id]

        set_state(db_url, series_id, "receiving")
        set_state(db_url, series_id, "ready")

        assert events.next().payload["series_ids"] == [series_id]


def test_a_restarted_trigger_announces_what_is_waiting_once(db_url):
    waiting = add_series(db_url, 1, ago=60)
    add_series(db_url, 2, state="claimed")

    with Events(SeriesReadyTrigger(poll_seconds=0.05, db_url=db_url)) as events:
        assert events.next().payload["series_ids"] == [waiting]
        assert events.none_within(0.3)


def test_an_unreachable_app_db_is_retried_without_ending_the_watch(tmp_path):
    missing = f"sqlite:///{tmp_path / 'not-migrated.sqlite'}"
    with Events(SeriesReadyTrigger(poll_seconds=0.05, db_url=missing)) as events:
        assert events.none_within(0.5)


def test_the_trigger_serializes_to_what_re_creates_it():
    classpath, kwargs = SERIES_READY.watchers[0].trigger.serialize()

    assert classpath == "dicom_ops.airflow.triggers.series_ready.SeriesReadyTrigger"
    assert SeriesReadyTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs == {"poll_seconds": 2.0, "db_url": None}  # no secrets in the DAG


def test_readiness_watch_window_tolerates_commits_out_of_order(db_url):
    watch = ReadinessWatch(overlap=timedelta(minutes=5))
    newer = add_series(db_url, 1)
    with session_scope(db_url) as session:
        assert watch.poll(session) == [newer]

    older = add_series(db_url, 2, ago=30)  # committed late, stamped earlier

    with session_scope(db_url) as session:
        assert watch.poll(session) == [older]
        assert watch.poll(session) == []
