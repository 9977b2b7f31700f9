"""The ``series`` rows as intake writes them: one row per Series Instance UID.

Life of a row, as far as intake is concerned:

- a receiving round starts (first instance of the series since it was last
  finished): state ``receiving``, ``folder`` = the round folder ``<series>.tmp-<n>``;
- the round finishes: its files are published in the series folder, state
  ``ready``, ``folder`` = the series folder, ``ready_at`` = now.

A series sent again after it was ready (or claimed, done, ignored, error) starts a
new round: the row goes back to ``receiving`` until the new files are merged into
the same series folder, then it is ``ready`` again with the new instance count.
Finishing a round is a compare-and-set on ``folder``, so a round that was overtaken
by a newer one never marks the series ready.

The export pipeline takes it from ``ready`` (see ``dicom_ops.jobs.claims``). Every
state change goes through ``series_lifecycle.move``, under the series row lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from dicom_ops.db.models import Series, utcnow
from dicom_ops.intake import series_lifecycle
from dicom_ops.intake.datastore import is_round_folder, new_round_folder, series_folder
from dicom_ops.intake.headers import InstanceHeader
from dicom_ops.intake.series_lifecycle import SeriesState, is_receiving

ACTOR = "intake"


@dataclass(frozen=True)
class Round:
    """Where one receiving round of one series writes, and where its files end up."""

    series_id: int
    folder: Path
    final_folder: Path


def begin_round(session: Session, header: InstanceHeader, *, datastore: Path, source: str,
                calling_aet: str | None = None) -> Round:
    """Record that ``header``'s series is receiving and create a new round folder for it.

    Always a new folder: if an older round of the series is being finished at
    this moment, it publishes its own files but no longer marks the series ready.
    """
    row = series_lifecycle.locked(session, series_uid=header.series_uid)
    now = utcnow()
    if row is None:
        final = series_folder(datastore, header.study_uid, header.series_uid)
        folder = new_round_folder(final)
        row = Series(
            study_uid=header.study_uid, series_uid=header.series_uid,
            modality=header.modality, description=header.description, instance_count=0,
            folder=str(folder), origin_folder=str(final), source=source,
            calling_aet=calling_aet, first_seen=now, last_seen=now,
        )
        series_lifecycle.move(session, row, SeriesState.RECEIVING, actor=ACTOR,
                              message=_from(source, calling_aet))
        return Round(row.id, folder, final)

    final = series_folder(datastore, row.study_uid, row.series_uid)
    folder = new_round_folder(final)
    detail = row.state_detail if is_receiving(row.state) else f"sent again while {row.state}"
    series_lifecycle.move(session, row, SeriesState.RECEIVING, actor=ACTOR, detail=detail,
                          message="sent again: " + _from(source, calling_aet))
    row.folder = str(folder)
    row.origin_folder = row.origin_folder or str(final)
    row.source = source
    row.calling_aet = calling_aet
    row.modality = row.modality or header.modality
    row.description = row.description or header.description
    row.last_seen = now
    return Round(row.id, folder, final)


def _from(source: str, calling_aet: str | None) -> str:
    return f"from {calling_aet} ({source})" if calling_aet else f"from {source}"


def finish_round(session: Session, round_: Round, instance_count: int, *,
                 duplicates: int = 0, last_seen: datetime | None = None) -> bool:
    """Mark the series ready if ``round_`` is still its current round; returns whether it was."""
    row = series_lifecycle.locked(session, series_id=round_.series_id)
    if row is None:
        return False
    row.instance_count = instance_count
    if row.folder != str(round_.folder):
        return False
    now = utcnow()
    message = f"{instance_count} instances"
    if duplicates:
        message += f"; {duplicates} duplicate instances stored once"
    series_lifecycle.move(session, row, SeriesState.READY, actor=ACTOR, message=message)
    row.folder = str(round_.final_folder)
    row.ready_at = now
    row.last_seen = last_seen or now
    return True


def record_progress(session: Session, counts: dict[int, tuple[int, datetime]]) -> None:
    """Instance counts and last arrival of series still receiving (for ``series list``)."""
    for series_id, (count, last_seen) in counts.items():
        row = session.get(Series, series_id)
        if row is not None and is_receiving(row.state):
            row.instance_count = count
            row.last_seen = last_seen


def receiving_rounds(session: Session, *, datastore: Path, source: str) -> list[Round]:
    """Rounds left ``receiving`` by ``source`` (a restart picks them up)."""
    rows = session.execute(
        select(Series.id, Series.folder, Series.study_uid, Series.series_uid)
        .where(is_receiving.clause, Series.source == source)
        .order_by(Series.id)
    ).all()
    return [Round(series_id, Path(folder), series_folder(datastore, study_uid, series_uid))
            for series_id, folder, study_uid, series_uid in rows]


def register_ready_series(session: Session, header: InstanceHeader, *, final_folder: Path,
                          origin_folder: Path, source: str, instance_count: int,
                          detail: str) -> tuple[int, bool]:
    """Record a series imported from a folder as ready; returns (series id, became ready).

    A series the listener is receiving at this moment stays ``receiving`` (the
    listener marks it ready when its round ends, with these files merged in).
    """
    row = series_lifecycle.locked(session, series_uid=header.series_uid)
    now = utcnow()
    if row is None:
        row = Series(
            study_uid=header.study_uid, series_uid=header.series_uid,
            modality=header.modality, description=header.description,
            first_seen=now, source=source,
        )
    elif is_receiving(row.state) and is_round_folder(Path(row.folder)):
        row.instance_count = instance_count
        session.flush()
        return row.id, False
    row.folder = str(final_folder)
    row.origin_folder = str(origin_folder)
    row.source = source
    row.calling_aet = None
    row.instance_count = instance_count
    row.last_seen = now
    row.ready_at = now
    series_lifecycle.move(session, row, SeriesState.READY, actor=ACTOR,
                          message=f"{instance_count} instances; {detail}")
    return row.id, True


def folder_is_receiving(session: Session, folder: Path) -> bool:
    """Whether a series is receiving into ``folder`` right now: cleanup must leave it alone.

    The listener records a round before it writes the round's first file, and
    never reuses the name of a round folder that still exists.
    """
    return bool(session.scalar(
        select(exists().where(is_receiving.clause, Series.folder == str(folder)))
    ))


def list_series(session: Session, state: str | None = None) -> list[dict[str, object]]:
    """Every series, oldest first, as plain values (for ``dicom-ops series list``)."""
    query = select(Series).order_by(Series.id)
    if state:
        query = query.where(Series.state == state)
    return [
        {
            "id": s.id, "state": s.state, "source": s.source, "modality": s.modality,
            "instances": s.instance_count, "study_uid": s.study_uid,
            "series_uid": s.series_uid, "description": s.description, "folder": s.folder,
            "origin_folder": s.origin_folder, "calling_aet": s.calling_aet,
            "state_detail": s.state_detail,
            "first_seen": _iso(s.first_seen), "last_seen": _iso(s.last_seen),
            "ready_at": _iso(s.ready_at),
        }
        for s in session.scalars(query)
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def mark_source(session: Session, series_uid: str, source: str) -> bool:
    """Record where a series came from when the listener cannot know it: a series that
    a PACS sent us on our C-MOVE arrives like any push (``scp``) and becomes ``pacs``
    here, once the move is done. Returns whether the series is known."""
    row = series_lifecycle.locked(session, series_uid=series_uid)
    if row is None:
        return False
    row.source = source
    return True
