"""The areas cleanup looks after: what is there, what must stay and why, and removing
one item under a claim that the pipelines respect.

How each removal stays clear of work in flight:

- **work folders, upload zips, a job's quarantine folder**: the job row is locked
  (``SELECT ... FOR UPDATE``; on SQLite every transaction is ``BEGIN IMMEDIATE``)
  and its status and transfer checked again under that lock. Every pipeline step
  takes the same lock to move or stage a job (``jobs.lifecycle``), and an ended
  job never runs again, so nothing can write there after the check.
- **unfinished ``.tmp-*`` folders**: the series row is locked, and it must still
  be ``receiving`` into that very folder with nothing arriving for the retention
  (never less than ``RECEIVING_GRACE`` plus the quiet period). The listener takes
  the same row lock to start a round, so it cannot start one meanwhile. The folder
  is moved aside in one rename and its files compared with a snapshot taken under
  the lock: a write that slipped in puts it back. The series becomes ``error``
  in the same transaction, so a restarted listener does not resume it; a write the
  listener still had in flight fails and is refused to the sender (0xA700), never
  lost in silence. A ``.tmp-*`` folder no series is receiving into (an interrupted
  folder import, say) gets the same rename and snapshot check.
- **datastore series folders** (only with a datastore retention): the series row is
  locked and must be done, ignored or error with no job still running; new rounds
  and new jobs lock the same row first.
- **quarantine files**: written once under a unique name and never again; only
  files untouched for ``SETTLE`` go.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from dicom_ops.cleanup import disk
from dicom_ops.config import Settings
from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Event, Job, JobSeries, Series, Transfer
from dicom_ops.db.session import session_scope
from dicom_ops.intake.datastore import ROUND_MARK
from dicom_ops.pipeline.export import ZIP_NAME
from dicom_ops.pipeline.workspace import job_id_of_work_dir

log = logging.getLogger("dicom_ops.cleanup")

ACTOR = "cleanup"
# A series with an instance this recently (plus the quiet period) is receiving, whatever
# the retention or a run's override says: the listener finishes a round within the
# quiet period once its sender has gone.
RECEIVING_GRACE = timedelta(hours=1)
# Files written this recently are left alone (a write may still be finishing).
SETTLE = timedelta(minutes=15)

JOB_RUNNING = ("in_queue", "processing")
# Transfer statuses in which the DRAW server may hold the job's data or result.
WITH_SERVER = ("uploading", "sent", "processing", "completed", "delivered")
SERIES_SETTLED = ("done", "ignored", "error")
EVENT_BATCH = 5000


@dataclass(frozen=True)
class Item:
    """One thing that may be removed. ``paths`` may name original UIDs: DEBUG only."""

    area: str
    label: str  # safe at INFO: "job 12", "series #4", "file", "folder"
    paths: tuple[Path, ...]
    since: datetime  # its age counts from here
    size: int
    floor: timedelta = timedelta(0)  # never removed younger than this, whatever the retention
    floor_reason: str = ""
    job_id: int | None = None
    series_id: int | None = None

    def age(self, now: datetime) -> timedelta:
        return now - self.since


@dataclass(frozen=True)
class Held:
    """Something cleanup may not touch now, and why (counted in the report)."""

    area: str
    reason: str
    label: str


@dataclass(frozen=True)
class Outcome:
    removed_bytes: int | None = None  # set when removed
    held: str | None = None  # why not; neither set: it was gone already

    @property
    def removed(self) -> bool:
        return self.removed_bytes is not None


GONE = Outcome()


@dataclass(frozen=True)
class Context:
    settings: Settings
    now: datetime

    @property
    def db_url(self) -> str:
        return self.settings.db_url


# --- who must stay: plain rules on row values ------------------------------------------


def job_hold_reason(job_status: str | None, transfer_status: str | None, *,
                    missing_ok: bool = False) -> str | None:
    """Why a job's files must stay, or None once the job has ended for good."""
    if job_status is None:
        return None if missing_ok else "belong to no job in the app DB (left for a person)"
    if job_status == "in_queue":
        return "job in queue"
    if job_status == "processing":
        if transfer_status in ("sent", "processing"):
            return "job waiting for the DRAW server"
        return "job processing"
    if transfer_status in WITH_SERVER:
        return (f"job ended with its transfer still {transfer_status!r} (the DRAW server "
                "may hold its data; check the server)")
    return None


def series_hold_reason(state: str, running_job: bool) -> str | None:
    """Why a series' datastore folder must stay, or None."""
    if state == "receiving":
        return "series receiving"
    if state in ("ready", "claimed"):
        return "series waiting for export"
    if running_job:
        return "a job of the series is still running"
    return None


def receiving_floor(settings: Settings) -> timedelta:
    return RECEIVING_GRACE + timedelta(seconds=settings.quiet_seconds)


# --- surveys: what is there --------------------------------------------------------------


def survey_work(ctx: Context) -> tuple[list[Item], list[Held]]:
    """Work folders (area ``work``) and the upload zips in them (area ``uploads``)."""
    work_dir = ctx.settings.work_dir
    entries = _children(work_dir)
    folders = {job_id_of_work_dir(p): p for p in entries if p.is_dir()}
    held = [Held("work", "not a job's work folder (left alone)", "entry")
            for p in entries if job_id_of_work_dir(p) is None or not p.is_dir()]
    folders.pop(None, None)
    with session_scope(ctx.db_url) as session:
        jobs = _job_facts(session, list(folders))
    items: list[Item] = []
    for job_id, folder in sorted(folders.items()):
        status, transfer, since = jobs.get(job_id, (None, None, None))
        reason = job_hold_reason(status, transfer)
        if reason:
            held.append(Held("work", reason, f"job {job_id}"))
            continue
        label = f"job {job_id}"
        items.append(Item("work", label, (folder,), since, disk.tree_size(folder),
                          job_id=job_id))
        zips = tuple(p for p in (folder / ZIP_NAME, folder / f"{ZIP_NAME}.part") if p.exists())
        if zips:
            items.append(Item("uploads", label, zips, since,
                              sum(disk.tree_size(p) for p in zips), job_id=job_id))
    return items, held


def survey_quarantine(ctx: Context) -> tuple[list[Item], list[Held]]:
    """Files quarantined by intake (grouped with their reason file) and per-job folders."""
    items: list[Item] = []
    held: list[Held] = []
    groups: dict[str, list[Path]] = {}
    job_folders: dict[int, Path] = {}
    for path in _children(ctx.settings.quarantine_dir):
        if path.is_dir():
            job_id = job_id_of_work_dir(path)
            if job_id is None:
                items.append(_settling_item("quarantine", "folder", (path,)))
            else:
                job_folders[job_id] = path
        else:
            groups.setdefault(path.name.lstrip(".").split(".", 1)[0], []).append(path)
    for paths in groups.values():
        items.append(_settling_item("quarantine", "file", tuple(sorted(paths))))
    with session_scope(ctx.db_url) as session:
        jobs = _job_facts(session, list(job_folders))
    for job_id, folder in sorted(job_folders.items()):
        status, transfer, _ = jobs.get(job_id, (None, None, None))
        reason = job_hold_reason(status, transfer, missing_ok=True)
        if reason:
            held.append(Held("quarantine", reason, f"job {job_id}"))
        else:
            items.append(_settling_item("quarantine", f"job {job_id}", (folder,), job_id=job_id))
    return [i for i in items if i is not None], held


def survey_receiving(ctx: Context) -> tuple[list[Item], list[Held]]:
    """``.tmp-*`` round folders: of series receiving, and those no series receives into."""
    datastore = ctx.settings.datastore_dir
    floor = receiving_floor(ctx.settings)
    why = "still receiving (an instance within the last hour plus the quiet period)"
    with session_scope(ctx.db_url) as session:
        rows = session.execute(
            select(Series.id, Series.folder, Series.last_seen).where(Series.state == "receiving")
        ).all()
    items: list[Item] = []
    current: set[Path] = set()
    for series_id, folder, last_seen in rows:
        path = Path(folder)
        current.add(_real(path))
        if ROUND_MARK not in path.name or not _inside(path, datastore) or not path.is_dir():
            continue  # nothing on disk of ours to clean (the listener resumes such rows)
        since = max(last_seen, disk.newest_mtime(path) or last_seen)
        items.append(Item("receiving", f"series #{series_id}", (path,), since,
                          disk.tree_size(path), floor=floor, floor_reason=why,
                          series_id=series_id))
    for path in _round_folders(datastore):
        if _real(path) not in current:
            since = disk.newest_mtime(path)
            if since is not None:
                items.append(Item("receiving", "folder", (path,), since, disk.tree_size(path),
                                  floor=floor, floor_reason="written to within the last hour "
                                  "plus the quiet period"))
    return items, []


def survey_datastore(ctx: Context, cutoff: datetime) -> tuple[list[Item], list[Held]]:
    """Series folders in the datastore whose last activity is before ``cutoff``."""
    datastore = ctx.settings.datastore_dir
    with session_scope(ctx.db_url) as session:
        rows = session.execute(
            select(Series.id, Series.state, Series.folder, Series.last_seen, Series.ready_at)
            .where(Series.last_seen < cutoff).order_by(Series.id)
        ).all()
        activity = _series_job_activity(session, [row.id for row in rows])
    items: list[Item] = []
    held: list[Held] = []
    for series_id, state, folder, last_seen, ready_at in rows:
        path = Path(folder)
        if ROUND_MARK in path.name or not _inside(path, datastore) or not path.is_dir():
            continue  # a round (area receiving), outside the datastore, or removed already
        running, last_job = activity.get(series_id, (False, None))
        label = f"series #{series_id}"
        reason = series_hold_reason(state, running)
        if reason:
            held.append(Held("datastore", reason, label))
            continue
        since = _latest((last_seen, ready_at, last_job))
        items.append(Item("datastore", label, (path,), since, disk.tree_size(path),
                          series_id=series_id))
    return items, held


def _settling_item(area: str, label: str, paths: tuple[Path, ...], *,
                   job_id: int | None = None) -> Item | None:
    """An item whose age is that of its newest file (None if it vanished meanwhile)."""
    since = _latest(disk.newest_mtime(p) for p in paths)
    if since is None:
        return None
    return Item(area, label, paths, since, sum(disk.tree_size(p) for p in paths), floor=SETTLE,
                floor_reason=f"written within {int(SETTLE.total_seconds() // 60)} min",
                job_id=job_id)


def _job_facts(session: Session, job_ids: Sequence[int]
               ) -> dict[int, tuple[str, str | None, datetime]]:
    """job id -> (status, transfer status, when it ended or last changed)."""
    facts = {}
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start:start + 500]
        rows = session.execute(
            select(Job.id, Job.status, Transfer.status, Job.finished_at, Job.updated_at)
            .outerjoin(Transfer, Transfer.job_id == Job.id).where(Job.id.in_(chunk))
        ).all()
        for job_id, status, transfer, finished_at, updated_at in rows:
            facts[job_id] = (status, transfer, finished_at or updated_at)
    return facts


def _series_job_activity(session: Session, series_ids: Sequence[int]
                         ) -> dict[int, tuple[bool, datetime | None]]:
    """series id -> (a job of it is still running, when its last job ended)."""
    found: dict[int, tuple[bool, datetime | None]] = {}
    for start in range(0, len(series_ids), 500):
        chunk = series_ids[start:start + 500]
        rows = session.execute(
            select(JobSeries.series_id, Job.status, Transfer.status, Job.finished_at,
                   Job.updated_at)
            .join(Job, Job.id == JobSeries.job_id)
            .outerjoin(Transfer, Transfer.job_id == Job.id)
            .where(JobSeries.series_id.in_(chunk))
        ).all()
        for series_id, status, transfer, finished_at, updated_at in rows:
            running, last = found.get(series_id, (False, None))
            found[series_id] = (running or job_hold_reason(status, transfer) is not None,
                                _latest((last, finished_at or updated_at)))
    return found


def _latest(moments: Iterable[datetime | None]) -> datetime | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def _children(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.name != disk.TRASH_NAME)
    except FileNotFoundError:
        return []


def _round_folders(datastore: Path) -> Iterable[Path]:
    for study in _children(datastore):
        if study.is_dir():
            for entry in _children(study):
                if ROUND_MARK in entry.name and entry.is_dir():
                    yield entry


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, root: Path) -> bool:
    return _real(path).is_relative_to(_real(root))


# --- removals, each under its claim ------------------------------------------------------


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
        row = _locked_series_of_round(session, path)
        if item.series_id is None:  # a folder no series was receiving into
            if row is not None and row.state == "receiving" and _same(row.folder, path):
                return "series receiving"  # a round began in it since the survey
            return None
        if row is None or row.id != item.series_id or row.state != "receiving" \
                or not _same(row.folder, path):
            return "series moved on meanwhile"
        if ctx.now - row.last_seen < min_age:
            return item.floor_reason or "an instance arrived meanwhile"
        return None

    def on_moved(session: Session) -> None:
        if item.series_id is None:
            return
        row = session.get(Series, item.series_id)
        hours = (ctx.now - row.last_seen).total_seconds() / 3600
        detail = (f"abandoned: no instance for {hours:.0f} h; its unfinished files were "
                  f"removed by cleanup ({because}). Send the series again.")
        row.state = "error"
        row.state_detail = detail
        row.folder = row.origin_folder or str(path.with_name(path.name.split(ROUND_MARK)[0]))
        record_event(session, "abandoned", detail, series_id=row.id, actor=ACTOR)

    return _move_aside_and_delete(ctx, item, ctx.settings.datastore_dir, claim, on_moved,
                                  min_age=min_age)


def _remove_series_folder(ctx: Context, item: Item, min_age: timedelta, because: str) -> Outcome:
    def claim(session: Session) -> str | None:
        row = session.scalar(select(Series).where(Series.id == item.series_id)
                             .with_for_update())
        if row is None or not _same(row.folder, item.paths[0]):
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


def _locked_series_of_round(session: Session, folder: Path) -> Series | None:
    series_uid = folder.name.split(ROUND_MARK)[0]
    return session.scalar(select(Series).where(Series.series_uid == series_uid)
                          .with_for_update())


def _same(stored: str | None, path: Path) -> bool:
    return stored is not None and _real(Path(stored)) == _real(path)


# --- leftovers of interrupted runs -------------------------------------------------------


def leftover_trash(settings: Settings) -> list[tuple[str, Path]]:
    """(area, path) of what an interrupted run moved aside but did not delete yet."""
    found = []
    for root in (settings.work_dir, settings.quarantine_dir, settings.datastore_dir):
        for path in _children_of_trash(root):
            if not path.name.startswith("keep-"):
                found.append((path.name.split("-", 1)[0], path))
    return found


def _children_of_trash(root: Path) -> list[Path]:
    try:
        with os.scandir(disk.trash_dir(root)) as entries:
            return sorted(Path(e.path) for e in entries)
    except FileNotFoundError:
        return []


# --- audit events ---------------------------------------------------------------------------


def _old_events(cutoff: datetime):
    running = select(Job.id).where(Job.status.in_(JOB_RUNNING))
    old = Event.at < cutoff
    return (and_(old, or_(Event.job_id.is_(None), Event.job_id.not_in(running))),
            and_(old, Event.job_id.in_(running)))


def count_old_events(ctx: Context, cutoff: datetime) -> tuple[int, int]:
    """(events older than ``cutoff`` that may go, those kept for jobs still running)."""
    may_go, of_running = _old_events(cutoff)
    with session_scope(ctx.db_url) as session:
        return (session.scalar(select(func.count()).select_from(Event).where(may_go)),
                session.scalar(select(func.count()).select_from(Event).where(of_running)))


def delete_old_events(ctx: Context, cutoff: datetime) -> int:
    """Delete them in batches (short transactions: writers never wait long)."""
    may_go, _ = _old_events(cutoff)
    deleted = 0
    while True:
        with session_scope(ctx.db_url) as session:
            ids = list(session.scalars(select(Event.id).where(may_go).order_by(Event.id)
                                       .limit(EVENT_BATCH)))
            if not ids:
                return deleted
            session.execute(delete(Event).where(Event.id.in_(ids)))
        deleted += len(ids)
