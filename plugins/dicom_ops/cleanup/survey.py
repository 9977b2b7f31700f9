"""What is there, per area: the items cleanup may remove one day, and what it must hold.

Each ``survey_*`` reads one area (folders on disk, the rows they belong to) and
returns ``(items, held)``: ``Item`` for what the rules allow to go once old
enough, ``Held`` (with the reason, for the report) for what must stay. A survey
changes nothing: ``remove`` checks every item again under its row lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicom_ops.cleanup import disk
from dicom_ops.cleanup.rules import (
    SETTLE,
    Context,
    Held,
    Item,
    job_hold_reason,
    old_events,
    receiving_floor,
    series_hold_reason,
)
from dicom_ops.config import Settings
from dicom_ops.db.models import Event, Job, JobSeries, Series, Transfer
from dicom_ops.db.session import session_scope
from dicom_ops.intake.datastore import ROUND_MARK
from dicom_ops.intake.series_lifecycle import is_receiving
from dicom_ops.pipeline.export import PARTIAL_ZIP_NAME, ZIP_NAME
from dicom_ops.pipeline.workspace import job_id_of_work_dir


def survey_work(ctx: Context) -> tuple[list[Item], list[Held]]:
    """Work folders (area ``work``) and the upload zips in them (area ``uploads``)."""
    work_dir = ctx.settings.work_dir
    entries = disk.children(work_dir)
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
        zips = tuple(p for p in (folder / ZIP_NAME, folder / PARTIAL_ZIP_NAME) if p.exists())
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
    for path in disk.children(ctx.settings.quarantine_dir):
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
            select(Series.id, Series.folder, Series.last_seen).where(is_receiving.clause)
        ).all()
    items: list[Item] = []
    current: set[Path] = set()
    for series_id, folder, last_seen in rows:
        path = Path(folder)
        current.add(disk.real(path))
        if ROUND_MARK not in path.name or not disk.is_inside(path, datastore) or not path.is_dir():
            continue  # nothing on disk of ours to clean (the listener resumes such rows)
        since = max(last_seen, disk.newest_mtime(path) or last_seen)
        items.append(Item("receiving", f"series #{series_id}", (path,), since,
                          disk.tree_size(path), floor=floor, floor_reason=why,
                          series_id=series_id))
    for path in _round_folders(datastore):
        if disk.real(path) not in current:
            since = disk.newest_mtime(path)
            if since is not None:
                items.append(Item("receiving", "folder", (path,), since, disk.tree_size(path),
                                  floor=floor, floor_reason="written to within the last hour "
                                  "plus the quiet period"))
    return items, []


def survey_datastore(ctx: Context, cutoff: datetime) -> tuple[list[Item], list[Held]]:
    """Series folders in the datastore whose last activity is before ``cutoff``.

    Starts from the folders on disk (``<study>/<series UID>``, found by the series UID's
    unique index), not from the series rows: the row of a series whose files went long
    ago stays in the app DB, and reading every such row each run would make cleanup
    cost more with every series ever received (bench/history.py).
    """
    datastore = ctx.settings.datastore_dir
    on_disk = {path.name: path for path in _series_folders(datastore)}
    names = sorted(on_disk)
    with session_scope(ctx.db_url) as session:
        rows = []
        for start in range(0, len(names), 500):
            rows += session.execute(
                select(Series.id, Series.state, Series.folder, Series.last_seen,
                       Series.ready_at, Series.series_uid)
                .where(Series.series_uid.in_(names[start:start + 500]),
                       Series.last_seen < cutoff)
            ).all()
        rows = [row[:5] for row in sorted(rows) if disk.same_path(row.folder,
                                                                  on_disk[row.series_uid])]
        activity = _series_job_activity(session, [row[0] for row in rows])
    items: list[Item] = []
    held: list[Held] = []
    for series_id, state, folder, last_seen, ready_at in rows:
        path = Path(folder)
        if ROUND_MARK in path.name or not disk.is_inside(path, datastore) or not path.is_dir():
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


def count_old_events(ctx: Context, cutoff: datetime) -> tuple[int, int]:
    """(events older than ``cutoff`` that may go, those kept for jobs still running)."""
    may_go, of_running = old_events(cutoff)
    with session_scope(ctx.db_url) as session:
        return (session.scalar(select(func.count()).select_from(Event).where(may_go)),
                session.scalar(select(func.count()).select_from(Event).where(of_running)))


def leftover_trash(settings: Settings) -> list[tuple[str, Path]]:
    """(area, path) of what an interrupted run moved aside but did not delete yet."""
    found = []
    for root in (settings.work_dir, settings.quarantine_dir, settings.datastore_dir):
        for path in _children_of_trash(root):
            if not path.name.startswith("keep-"):
                found.append((path.name.split("-", 1)[0], path))
    return found


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


def _round_folders(datastore: Path) -> Iterable[Path]:
    for study in disk.children(datastore):
        if study.is_dir():
            for entry in disk.children(study):
                if ROUND_MARK in entry.name and entry.is_dir():
                    yield entry


def _series_folders(datastore: Path) -> Iterable[Path]:
    """``<study>/<series>`` folders of finished rounds (named by the series UID)."""
    for study in disk.children(datastore):
        if study.is_dir():
            for entry in disk.children(study):
                if ROUND_MARK not in entry.name and entry.is_dir():
                    yield entry


def _children_of_trash(root: Path) -> list[Path]:
    try:
        with os.scandir(disk.trash_dir(root)) as entries:
            return sorted(Path(e.path) for e in entries)
    except FileNotFoundError:
        return []
