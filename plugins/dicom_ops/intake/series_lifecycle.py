"""The series state machine, in one place: its states, the moves allowed, and the questions
everyone else asks about a series ("is it receiving into this folder?", "is it settled?").

    receiving -> ready -> claimed -> done | ignored | error
    receiving -> error        the round stored nothing, or cleanup abandoned it
    claimed   -> ready        recovery gives a stale claim back
    any state -> receiving    sent again: a new round
    any state -> ready        imported again from a folder
    a new row starts receiving (the listener) or ready (a folder import)

Every change of ``Series.state`` goes through ``move``: it takes the row lock,
refuses a move the table does not allow (naming the series and both states),
and records the audit event in the same transaction. The states are the strings
stored in ``series.state``; the DB schema does not change.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Series
from dicom_ops.db.states import StatePredicate, Transitions


class SeriesState(StrEnum):
    RECEIVING = "receiving"  # a round is open: instances arrive into <series>.tmp-<n>/
    READY = "ready"  # finished: waits for the planner
    CLAIMED = "claimed"  # a planner took it and is matching templates
    DONE = "done"  # planned: it has a job (or an equal job existed)
    IGNORED = "ignored"  # planned: nothing to segment (no template, no image); see state_detail
    ERROR = "error"  # a template conflict, unreadable, or a round that failed; see state_detail


_AGAIN = (SeriesState.RECEIVING, SeriesState.READY)  # sent again / imported again: any time

TRANSITIONS: Transitions[SeriesState] = Transitions({
    None: {SeriesState.RECEIVING, SeriesState.READY},  # first instance / a folder import
    # a newer round overtakes; the round finished; it stored nothing or cleanup abandoned it
    SeriesState.RECEIVING: {*_AGAIN, SeriesState.ERROR},
    SeriesState.READY: {*_AGAIN, SeriesState.CLAIMED},
    # planned; or released by recovery (ready)
    SeriesState.CLAIMED: {*_AGAIN, SeriesState.DONE, SeriesState.IGNORED, SeriesState.ERROR},
    SeriesState.DONE: {*_AGAIN},
    SeriesState.IGNORED: {*_AGAIN},
    SeriesState.ERROR: {*_AGAIN},
})

# --- the questions other modules ask (``pred(series.state)``, or ``pred.clause`` in SQL) ---

is_receiving = StatePredicate(
    Series.state, {SeriesState.RECEIVING},
    doc="A round is open: the listener (or a folder import) writes into its round folder.")
awaits_planning = StatePredicate(
    Series.state, {SeriesState.READY}, doc="Finished and waiting: the planner may claim it.")
is_claimed = StatePredicate(
    Series.state, {SeriesState.CLAIMED}, doc="A planner holds it: only it may settle it.")
awaits_export = StatePredicate(
    Series.state, {SeriesState.READY, SeriesState.CLAIMED},
    doc="Finished but not planned yet: the export still needs its files.")
was_not_sent = StatePredicate(
    Series.state, {SeriesState.IGNORED, SeriesState.ERROR},
    doc="Planned without a job: no template, a conflict, unreadable (the jobs page lists them).")
is_settled = StatePredicate(
    Series.state, {SeriesState.DONE, SeriesState.IGNORED, SeriesState.ERROR},
    doc="Planned or given up: nothing moves it again but a new round or a new import.")


def is_receiving_into(series: Series, folder: Path) -> bool:
    """Whether ``series`` is receiving into ``folder`` (the same folder on disk) right now."""
    return (is_receiving(series.state) and series.folder is not None
            and os.path.realpath(series.folder) == os.path.realpath(folder))


# --- locking and moving -----------------------------------------------------------------


def locked(session: Session, *, series_id: int | None = None,
           series_uid: str | None = None) -> Series | None:
    """The series row, fresh from the DB and locked until the transaction ends, or None.

    ``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every transaction already holds
    the write lock (``BEGIN IMMEDIATE``, see ``db.session``). Intake, the planner,
    recovery and cleanup all take this lock before they look at a series' state.
    """
    if (series_id is None) == (series_uid is None):
        raise ValueError("give exactly one of series_id and series_uid")
    where = Series.id == series_id if series_id is not None else Series.series_uid == series_uid
    return session.execute(
        select(Series).where(where).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()


def move(session: Session, series: Series, to: SeriesState, *, actor: str,
         detail: str | None = None, event: str | None = None,
         message: str | None = None) -> SeriesState | None:
    """Move ``series`` to ``to`` under its row lock, or raise ``MoveRefused``.

    A row not stored yet is added and starts in ``to``. ``state_detail`` becomes
    ``detail`` (a new state starts without the old one's reason unless the caller
    keeps it). Records the audit event ``event`` (default: the new state's name)
    with ``message`` (default ``"<from> -> <to>"``) in the same transaction.
    Returns the state the series came from (None for a new row).
    """
    target = SeriesState(to)
    current: SeriesState | None = None
    if inspect(series).persistent:
        locked(session, series_id=series.id)  # refreshes ``series`` (same identity)
        current = SeriesState(series.state)
    TRANSITIONS.check(_subject(series), current, target)
    series.state = target.value
    series.state_detail = detail
    if current is None:
        session.add(series)
        session.flush()  # the event needs the new row's id
    record_event(session, event or target.value,
                 f"{current or 'new'} -> {target}" if message is None else message,
                 series_id=series.id, actor=actor)
    return current


def _subject(series: Series) -> str:
    return f"series #{series.id}" if series.id is not None else "series"
