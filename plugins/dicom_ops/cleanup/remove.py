"""Removing one item under a claim the pipelines respect, and deleting old audit events.

How each removal stays clear of work in flight:

- **work folders, upload zips, a job's quarantine folder**: the job row is locked
  (``SELECT ... FOR UPDATE``; on SQLite every transaction is ``BEGIN IMMEDIATE``),
  then its transfer row, and the rules are checked again under those locks. Every
  pipeline step takes the same locks, in the same order, to move or stage a job
  or its transfer (``jobs.lifecycle``, ``draw.transfer_lifecycle``), and an ended
  job never runs again, so nothing can write there after the check.
- **unfinished ``.tmp-*`` folders**: the series row is locked, and it must still
  be receiving into that very folder with nothing arriving for the retention
  (never less than ``RECEIVING_GRACE`` plus the quiet period). The listener takes
  the same row lock to start a round, so it cannot start one meanwhile. The folder
  is moved aside in one rename and its files compared with a snapshot taken under
  the lock: a write that slipped in puts it back. The series becomes ``error``
  in the same transaction, so a restarted listener does not resume it; a write the
  listener still had in flight fails and is refused to the sender (0xA700), never
  lost in silence. A ``.tmp-*`` folder no series is receiving into (an interrupted
  folder import, say) gets the same rename and snapshot check.
- **datastore series folders** (only with a datastore retention): the series row is
  locked and must be settled with no job still running; new rounds and new jobs
  lock the same row first.
- **quarantine files**: written once under a unique name and never again; only
  files untouched for ``SETTLE`` go.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dicom_ops.cleanup import disk
from dicom_ops.cleanup.rules import (
    ACTOR,
    GONE,
    Context,
    Item,
    Outcome,
    job_hold_reason,
    old_events,
    series_hold_reason,
)
from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Event, Job, JobSeries, Series, Transfer
from dicom_ops.db.session import session_scope
from dicom_ops.intake import series_lifecycle
from dicom_ops.intake.datastore import ROUND_MARK
from dicom_ops.intake.series_lifecycle import SeriesState, is_receiving_into

log = logging.getLogger("dicom_ops.cleanup")

EVENT_BATCH = 5000


def remove_item(ctx: Context, item: Item, min_age: timedelta, because: str) -> Outcome:
    """Remove ``item`` if it is still allowed to go and at least ``min_age`` old."""
    removers: dict[str, Callable[[Context, Item, timedelta, str], Outcome]] = {
        "work": _remove_work_folder,
        "uploads": _remove_upload_zip,
        "quarantine": _remove_quarantined,
        "receiving": _remove_round_folder,
        "datastore": _remove_series_folder,
    }
    outcome = removers[item.area](ctx, item, min_age, because)
    if outcome.removed:
        log.debug("%s: removed %s (%s)", item.area, ", ".join(map(str, item.paths)), because)
    return outcome


def delete_old_events(ctx: Context, cutoff: datetime) -> int:
    """Delete the events ``rules.old_events`` lets go, in batches (short transactions:
    writers never wait long)."""
    may_go, _ = old_events(cutoff)
    deleted = 0
    while True:
        with session_scope(ctx.db_url) as session:
            ids = list(session.scalars(select(Event.id).where(may_go).order_by(Event.id)
                                       .limit(EVENT_BATCH)))
            if not ids:
                return deleted
            session.execute(delete(Event).where(Event.id.in_(ids)))
        deleted += len(ids)


# --- the removers, one per area ----------------------------------------------------------


def _remove_work_folder(ctx: Context, item: Item, min_age: timedelta, because: str) -> Outcome:
    def claim(session: Session) -> str | None:
        return job_hold_reason(*_locked_job(session, item.job_id))

    def on_moved(session: Session) -> None:
        record_event(session, "cleanup", f"work folder removed ({because})", job_id=item.job_id,
                     actor=ACTOR)

    return _move_aside_and_delete(ctx, item, ctx.settings.work_dir, claim, on_moved)


def _remove_upload_zip(ctx: Context, item: Item, min_age: timedelta, because: str) -> Outcome:
    with session_scope(ctx.db_url) as session:
        held = job_hold_reason(*_locked_job(session, item.job_id))
        if held:
            return Outcome(held=held)
        size = sum(disk.tree_size(p) for p in item.paths)
        if size == 0 and not any(p.exists() for p in item.paths):
            return GONE
        for path in item.paths:  # the job has ended: no step opens its zip again
            path.unlink(missing_ok=True)
        record_event(session, "cleanup", f"upload zip removed ({because})", job_id=item.job_id,
                     actor=ACTOR)
    return Outcome(removed_bytes=size)


def _remove_quarantined(ctx: Context, item: Item, min_age: timedelta, because: str) -> Outcome:
    if len(item.paths) > 1 or not item.paths[0].is_dir():
        return _remove_settled_files(ctx, item, min_age)

    def claim(session: Session) -> str | None:
        if item.job_id is None:
            return None
        return job_hold_reason(*_locked_job(session, item.job_id), missing_ok=True)

    return _move_aside_and_delete(ctx, item, ctx.settings.quarantine_dir, claim,
                                  min_age=min_age)


def _remove_settled_files(ctx: Context, item: Item, min_age: timedelta) -> Outcome:
    """Quarantined files: each written once under a unique name, so an old one stays old."""
    newest = max((m for m in map(disk.newest_mtime, item.paths) if m is not None), default=None)
    if newest is None:
        return GONE
    if ctx.now - newest < min_age:
        return Outcome(held="written to meanwhile")
    size = sum(disk.tree_size(p) for p in item.paths)
    for path in item.paths:
        path.unlink(missing_ok=True)
    return Outcome(removed_bytes=size)


def _remove_round_folder(ctx: Context, item: Item, min_age: timedelta, because: str) -> Outcome:
    path = item.paths[0]

    def claim(session: Session) -> str | None:
        row = series_lifecycle.locked(session, series_uid=path.name.split(ROUND_MARK)[0])
        if item.series_id is None:  # a folder no series was receiving into
            if row is not None and is_receiving_into(row, path):
                return "series receiving"  # a round began in it since the survey
            return None
        if row is None or row.id != item.series_id or not is_receiving_into(row, path):
            return "series moved on meanwhile"
        if ctx.now - row.last_seen < min_age:
            return item.floor_reason or "an instance arrived meanwhile"
        return None

    def on_moved(session: Session) -> None:
        if item.series_id is None:
            return
        row = session.get(Series, item.series_id)  # locked by the claim
        hours = (ctx.now - row.last_seen).total_seconds() / 3600
        detail = (f"abandoned: no instance for {hours:.0f} h; its unfinished files were "
                  f"removed by cleanup ({because}). Send the series again.")
        series_lifecycle.move(session, row, SeriesState.ERROR, detail=detail,
                              event="abandoned", message=detail, actor=ACTOR)
        row.folder = row.origin_folder or str(path.with_name(path.name.split(ROUND_MARK)[0]))

    return _move_aside_and_delete(ctx, item, ctx.settings.datastore_dir, claim, on_moved,
                                  min_age=min_age)


def _remove_series_folder(ctx: Context, item: Item, min_age: timedelta, because: str) -> Outcome:
    def claim(session: Session) -> str | None:
        row = series_lifecycle.locked(session, series_id=item.series_id)
        if row is None or not disk.same_path(row.folder, item.paths[0]):
            return "series moved on meanwhile"
        running = any(job_hold_reason(status, transfer) for status, transfer in
                      session.execute(select(Job.status, Transfer.status)
                                      .join(JobSeries, JobSeries.job_id == Job.id)
                                      .outerjoin(Transfer, Transfer.job_id == Job.id)
                                      .where(JobSeries.series_id == row.id)))
        return series_hold_reason(row.state, running)

    def on_moved(session: Session) -> None:
        row = session.get(Series, item.series_id)
        row.state_detail = f"files removed by cleanup ({because})"
        record_event(session, "cleanup", f"datastore folder removed ({because})",
                     series_id=row.id, actor=ACTOR)

    return _move_aside_and_delete(ctx, item, ctx.settings.datastore_dir, claim, on_moved)


# --- the one way a folder goes: claim, move aside, re-check, delete --------------------------


def _move_aside_and_delete(ctx: Context, item: Item, area_root: Path,
                           claim: Callable[[Session], str | None],
                           on_moved: Callable[[Session], None] | None = None, *,
                           min_age: timedelta | None = None) -> Outcome:
    """Claim (rows locked, rules checked again) -> rename aside -> re-check -> commit -> delete.

    With ``min_age`` the folder's files must be that old and unchanged by the rename
    (a snapshot under the claim, compared after it); otherwise it goes back.
    """
    path = item.paths[0]
    moved: Path | None = None
    try:
        with session_scope(ctx.db_url) as session:
            held = claim(session)
            if held:
                return Outcome(held=held)
            before = disk.snapshot(path) if min_age is not None else None
            if min_age is not None:
                newest = disk.newest_mtime(path)
                if newest is None:
                    return GONE
                if ctx.now - newest < min_age:
                    return Outcome(held=item.floor_reason or "written to meanwhile")
            try:
                moved = disk.move_aside(path, area_root, item.area)
            except disk.CannotMoveAside as exc:
                return GONE if not path.exists() else Outcome(held=f"not removed: {exc.strerror}")
            if before is not None and disk.snapshot(moved) != before:
                _put_back(moved, path, item)
                moved = None
                return Outcome(held="written to while being removed (left in place)")
            if on_moved is not None:
                on_moved(session)
    except BaseException:
        if moved is not None:
            _put_back(moved, path, item)
        raise
    size = disk.tree_size(moved)
    disk.delete(moved)
    return Outcome(removed_bytes=size)


def _put_back(moved: Path, original: Path, item: Item) -> None:
    if disk.put_back(moved, original):
        return
    kept = moved.with_name(f"keep-{moved.name}")
    os.rename(moved, kept)
    log.error("%s %s: could not be put back after a failed cleanup check; kept in %s for a "
              "person to look at", item.area, item.label, kept.parent)
    log.debug("%s was %s", kept, original)


def _locked_job(session: Session, job_id: int | None) -> tuple[str | None, str | None]:
    """(job status, transfer status) with both rows locked until the transaction ends."""
    status = session.scalar(select(Job.status).where(Job.id == job_id).with_for_update())
    transfer = session.scalar(select(Transfer.status).where(Transfer.job_id == job_id)
                              .with_for_update())
    return status, transfer
