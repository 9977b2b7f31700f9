"""The series state machine: every move it allows, every move it refuses, its predicates."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from dicom_ops.db.models import SERIES_STATES, Event, Series
from dicom_ops.db.session import session_scope, upgrade
from dicom_ops.db.states import MoveRefused
from dicom_ops.intake import series_lifecycle
from dicom_ops.intake.series_lifecycle import (
    TRANSITIONS,
    SeriesState,
    awaits_export,
    awaits_planning,
    is_claimed,
    is_receiving,
    is_receiving_into,
    is_settled,
)
from sqlalchemy import select

from tests.support.jobs import add_series

RECEIVING, READY, CLAIMED, DONE, IGNORED, ERROR = SeriesState
# (from, to) -> why the machine allows it; None is a row not stored yet.
ALLOWED = {
    (None, RECEIVING): "the listener receives a series' first instance",
    (None, READY): "a folder import registers a series",
    (RECEIVING, RECEIVING): "a newer round overtakes the open one",
    (RECEIVING, READY): "the round is finished",
    (RECEIVING, ERROR): "the round stored nothing, or cleanup abandoned it",
    (READY, CLAIMED): "a planner claims it",
    (CLAIMED, DONE): "planned: a job exists",
    (CLAIMED, IGNORED): "planned: nothing to segment",
    (CLAIMED, ERROR): "planned: conflict or unreadable",
    (CLAIMED, READY): "recovery releases a stale claim (or it is imported again)",
    **{(state, RECEIVING): "sent again" for state in (READY, CLAIMED, DONE, IGNORED, ERROR)},
    **{(state, READY): "imported again" for state in (READY, DONE, IGNORED, ERROR)},
}
_new_numbers = itertools.count(1)
EVERY_PAIR = [(current, target) for current in (None, *SeriesState) for target in SeriesState]


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    """One app DB for the module: every case works on a series row of its own."""
    url = f"sqlite:///{tmp_path_factory.mktemp('series-lifecycle') / 'app.sqlite'}"
    upgrade(url)
    return url


def _series_in(session, state: SeriesState | None) -> Series:
    if state is None:
        return Series(study_uid="1.2.826.0.1.3680043.8.498.5",
                      series_uid=f"1.2.826.0.1.3680043.8.498.5.{next(_new_numbers)}",
                      folder="/nonexistent", source="scp")
    return session.get(Series, add_series(session, state=state.value))


def _events(session, series_id: int) -> list[tuple[str, str]]:
    return [(e.kind, e.message) for e in session.scalars(
        select(Event).where(Event.series_id == series_id).order_by(Event.id))]


def test_the_states_are_exactly_the_strings_the_db_stores():
    assert tuple(SeriesState) == SERIES_STATES


def test_the_machine_allows_exactly_the_documented_moves():
    assert TRANSITIONS.pairs() == set(ALLOWED)


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED, key=str))
def test_every_allowed_move_changes_the_state_and_records_it(url, current, target):
    # given a series in `current` (or a new row)
    with session_scope(url) as session:
        series = _series_in(session, current)
        # when it moves to `target`
        came_from = series_lifecycle.move(session, series, target, actor="test",
                                          detail="why it is so")
        series_id = series.id
    # then the row has the new state and its detail, and the move is in the audit log
    assert came_from == current
    with session_scope(url) as session:
        row = session.get(Series, series_id)
        assert (row.state, row.state_detail) == (target, "why it is so")
        assert _events(session, series_id)[-1] == (target, f"{current or 'new'} -> {target}")


@pytest.mark.parametrize(("current", "target"),
                         [pair for pair in EVERY_PAIR if pair not in ALLOWED])
def test_every_other_move_is_refused_naming_the_series_and_both_states(url, current, target):
    # given a series in `current`
    with session_scope(url) as session:
        series = _series_in(session, current)
        series_id = series.id
        before = _events(session, series_id) if series_id else []
    # when a move to `target` is asked for, then it is refused and nothing changes
    with pytest.raises(MoveRefused) as refused, session_scope(url) as session:
        series = session.get(Series, series_id) if series_id else _series_in(session, None)
        series_lifecycle.move(session, series, target, actor="test")
    if current is None:
        assert f"a new series cannot start as {target}" in str(refused.value)
        return
    assert f"series #{series_id} is {current}: cannot move it to {target}" \
        in str(refused.value)
    assert (refused.value.current, refused.value.target) == (current, target)
    with session_scope(url) as session:
        assert session.get(Series, series_id).state == current
        assert _events(session, series_id) == before


def test_a_move_records_the_event_and_message_its_caller_names(url):
    with session_scope(url) as session:
        series = _series_in(session, CLAIMED)
        series_lifecycle.move(session, series, DONE, actor="planner", detail="job 7 (HN)",
                              event="planned", message="done: job 7 (HN)")
        assert _events(session, series.id)[-1] == ("planned", "done: job 7 (HN)")
        assert session.scalars(select(Event.actor).where(Event.series_id == series.id)
                               .order_by(Event.id.desc())).first() == "planner"


def test_a_move_reads_the_state_fresh_under_the_lock(url):
    # given a series whose in-memory copy says ready while the DB says claimed
    with session_scope(url) as session:
        series_id = add_series(session, state="ready")
    with session_scope(url) as session:
        stale = session.get(Series, series_id)
        session.execute(Series.__table__.update().where(Series.id == series_id)
                        .values(state="claimed"))  # behind the ORM's back
        # when it is moved to claimed, then the move is judged on the stored state
        with pytest.raises(MoveRefused, match=f"series #{series_id} is claimed"):
            series_lifecycle.move(session, stale, CLAIMED, actor="test")


PREDICATES = {
    "is_receiving": (is_receiving, {RECEIVING}),
    "awaits_planning": (awaits_planning, {READY}),
    "is_claimed": (is_claimed, {CLAIMED}),
    "awaits_export": (awaits_export, {READY, CLAIMED}),
    "is_settled": (is_settled, {DONE, IGNORED, ERROR}),
}


@pytest.mark.parametrize("name", list(PREDICATES))
def test_each_predicate_answers_the_same_for_a_row_value_and_in_sql(db_url, name):
    predicate, expected = PREDICATES[name]
    # given one series in every state
    with session_scope(db_url) as session:
        ids = {state: add_series(session, state=state.value) for state in SeriesState}
    # then the predicate holds for exactly the expected states, on plain strings too ...
    assert {state for state in SeriesState if predicate(state.value)} == expected
    assert not predicate(None)
    # ... and its SQL form selects exactly those rows
    with session_scope(db_url) as session:
        found = set(session.scalars(select(Series.id).where(predicate.clause)))
    assert found == {ids[state] for state in expected}


def test_is_receiving_into_names_the_open_round_folder_even_through_a_symlink(tmp_path: Path):
    round_folder = tmp_path / "study" / "1.2.3.tmp-1"
    round_folder.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "study")
    series = Series(state="receiving", folder=str(round_folder))

    assert is_receiving_into(series, tmp_path / "link" / "1.2.3.tmp-1")
    assert not is_receiving_into(series, tmp_path / "study" / "1.2.3.tmp-2")
    assert not is_receiving_into(Series(state="ready", folder=str(round_folder)), round_folder)


def test_locking_wants_exactly_one_key(url):
    with session_scope(url) as session, pytest.raises(ValueError, match="exactly one"):
        series_lifecycle.locked(session)
