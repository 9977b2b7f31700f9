"""Finished-series detection, driven by a hand-moved clock against a real SQLite app DB."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from dicom_ops.db.models import Series
from dicom_ops.db.session import create_engine_for, session_scope
from dicom_ops.intake import series_registry
from dicom_ops.intake.completion import ReceivingTracker
from dicom_ops.intake.headers import InstanceHeader

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.1.2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(settings, db_url):
    """The test settings on each app DB backend in turn (SQLite, PostgreSQL)."""
    return replace(settings, db_url=db_url)


@pytest.fixture
def tracker(settings, clock) -> ReceivingTracker:
    return make_tracker(settings, clock)


def make_tracker(settings, clock) -> ReceivingTracker:
    return ReceivingTracker(create_engine_for(settings.db_url), settings.datastore_dir,
                            quiet_seconds=2, clock=clock)


def header(number: int, series_uid: str = SERIES) -> InstanceHeader:
    return InstanceHeader(STUDY, series_uid, f"{series_uid}.{number}", "CT", "Thorax")


def receive(tracker: ReceivingTracker, numbers, *, association: int = 1,
            series_uid: str = SERIES) -> None:
    for number in numbers:
        reservation = tracker.reserve(header(number, series_uid), association, "CT1")
        if reservation is not None:
            reservation.path.write_bytes(b"instance %d" % number)
            tracker.stored(reservation, True)


def row(settings, series_uid: str = SERIES) -> Series:
    with session_scope(settings.db_url) as session:
        return session.query(Series).filter_by(series_uid=series_uid).one()


def final_folder(settings, series_uid: str = SERIES) -> Path:
    return settings.datastore_dir / STUDY / series_uid


def test_a_series_is_ready_after_the_quiet_period_once_its_association_closed(
        tracker, clock, settings):
    receive(tracker, range(1, 4))
    clock.now += 5
    assert tracker.tick() == []  # quiet, but the sender's association is still open
    assert row(settings).state == "receiving"

    tracker.association_closed(1)
    ready = tracker.tick()

    series = row(settings)
    assert ready == [series.id]
    assert (series.state, series.instance_count) == ("ready", 3)
    assert series.folder == str(final_folder(settings))
    assert sorted(p.name for p in final_folder(settings).iterdir()) == \
        [f"{SERIES}.{n}.dcm" for n in (1, 2, 3)]
    assert not any(p.name.startswith(f"{SERIES}.tmp") for p in final_folder(settings).parent.iterdir())


def test_a_series_that_keeps_arriving_is_not_ready(tracker, clock, settings):
    receive(tracker, [1])
    tracker.association_closed(1)
    clock.now += 1.5
    receive(tracker, [2], association=2)
    tracker.association_closed(2)
    clock.now += 1.5

    assert tracker.tick() == []
    clock.now += 1
    assert tracker.tick() == [row(settings).id]


def test_progress_is_visible_while_receiving(tracker, clock, settings):
    receive(tracker, range(1, 6))
    clock.now += 1.5

    tracker.tick()

    series = row(settings)
    assert (series.state, series.instance_count) == ("receiving", 5)
    assert Path(series.folder).name == f"{SERIES}.tmp-1"


def test_a_duplicate_sop_instance_is_stored_once(tracker, clock, settings):
    receive(tracker, [1, 2, 1, 2, 3])
    tracker.association_closed(1)
    clock.now += 3

    tracker.tick()

    assert row(settings).instance_count == 3
    assert len(list(final_folder(settings).iterdir())) == 3


def test_a_series_sent_again_is_receiving_then_ready_again_with_the_merged_count(
        tracker, clock, settings):
    receive(tracker, [1, 2])
    tracker.association_closed(1)
    clock.now += 3
    tracker.tick()
    first = row(settings)
    with session_scope(settings.db_url) as session:  # the export pipeline took it
        session.get(Series, first.id).state = "done"

    receive(tracker, [2, 3, 4], association=2)
    during = row(settings)
    tracker.association_closed(2)
    clock.now += 3
    tracker.tick()

    again = row(settings)
    assert (during.state, during.state_detail) == ("receiving", "sent again while done")
    assert Path(during.folder).name == f"{SERIES}.tmp-1"
    assert (again.id, again.state, again.instance_count) == (first.id, "ready", 4)
    assert again.ready_at > first.ready_at
    assert len(list(final_folder(settings).iterdir())) == 4


def test_an_overtaken_round_publishes_its_files_but_leaves_the_series_receiving(settings):
    engine = create_engine_for(settings.db_url)
    with session_scope(engine) as session:
        older = series_registry.begin_round(session, header(1), datastore=settings.datastore_dir,
                                            source="scp")
    with session_scope(engine) as session:
        newer = series_registry.begin_round(session, header(2), datastore=settings.datastore_dir,
                                            source="scp")

    with session_scope(engine) as session:
        older_marked = series_registry.finish_round(session, older, 1)
    during = row(settings)
    with session_scope(engine) as session:
        newer_marked = series_registry.finish_round(session, newer, 2)

    assert (older.folder.name, newer.folder.name) == (f"{SERIES}.tmp-1", f"{SERIES}.tmp-2")
    assert (older_marked, during.state) == (False, "receiving")
    assert newer_marked is True
    assert row(settings).state == "ready"


def test_a_round_left_by_a_crash_is_resumed_and_completes(settings, clock):
    crashed = make_tracker(settings, clock)
    receive(crashed, [1, 2])
    round_folder = Path(row(settings).folder)
    (round_folder / f".{SERIES}.3.dcm.999-1.part").write_bytes(b"half an instance")

    restarted = make_tracker(settings, clock)
    assert restarted.adopt_leftovers() == 1
    receive(restarted, [2, 3], association=7)
    restarted.association_closed(7)
    clock.now += 3
    restarted.tick()

    series = row(settings)
    assert (series.state, series.instance_count) == ("ready", 3)
    assert sorted(p.name for p in final_folder(settings).iterdir()) == \
        [f"{SERIES}.{n}.dcm" for n in (1, 2, 3)]


def test_a_round_published_just_before_a_crash_is_marked_ready_at_start(settings, clock):
    crashed = make_tracker(settings, clock)
    receive(crashed, [1, 2])
    Path(row(settings).folder).rename(final_folder(settings))  # renamed; the DB not told

    restarted = make_tracker(settings, clock)
    restarted.adopt_leftovers()

    series = row(settings)
    assert (series.state, series.instance_count) == ("ready", 2)
    assert series.folder == str(final_folder(settings))


def test_only_the_folder_of_a_receiving_round_counts_as_in_use(tracker, clock, settings):
    receive(tracker, [1])
    receiving_folder = Path(row(settings).folder)
    with session_scope(settings.db_url) as session:
        assert series_registry.folder_is_receiving(session, receiving_folder)
        assert not series_registry.folder_is_receiving(session, final_folder(settings))

    tracker.association_closed(1)
    clock.now += 3
    tracker.tick()

    with session_scope(settings.db_url) as session:
        assert not series_registry.folder_is_receiving(session, receiving_folder)
