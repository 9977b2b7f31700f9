"""draw_cleanup without Airflow: keep the disk from filling, never touching work in flight.

One run:

1. finishes what an interrupted run had moved aside already;
2. surveys each area (``survey``): what is there, what must stay and why (``rules``);
3. retention: removes what is older than its area's retention, oldest first;
4. audit events older than their retention (only if one is set);
5. disk watermark: while free space under the data root is below
   ``DICOM_OPS_CLEANUP_WATERMARK``, removes more of what is allowed to go (upload
   zips, work folders, quarantine, abandoned ``.tmp`` folders) ahead of its
   retention, oldest first, and stops as soon as free space is back above it.
   Datastore folders and events never go early.

Every removal re-checks its item under a claim first (see ``remove``). A dry
run surveys and reports the same way and changes nothing, on disk or in the DB.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dicom_ops.cleanup import disk
from dicom_ops.cleanup.remove import delete_old_events, remove_item
from dicom_ops.cleanup.report import (
    AREAS,
    AreaReport,
    CleanupReport,
    human_age,
    human_bytes,
)
from dicom_ops.cleanup.rules import (
    ACTOR,
    EARLY,
    WATERMARK_AREAS,
    Context,
    Held,
    Item,
    oldest_first,
    retention_for,
)
from dicom_ops.cleanup.survey import (
    count_old_events,
    leftover_trash,
    survey_datastore,
    survey_quarantine,
    survey_receiving,
    survey_work,
)
from dicom_ops.config import Settings
from dicom_ops.db.audit import record_event
from dicom_ops.db.models import utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.failures import describe

log = logging.getLogger("dicom_ops.cleanup")


def run_cleanup(settings: Settings, *, dry_run: bool = False,
                older_than_hours: float | None = None, now: datetime | None = None,
                free_space: disk.FreeSpaceProbe = disk.free_bytes) -> CleanupReport:
    """One cleanup run; returns its report (``report.lines()`` for people, ``summary()``)."""
    retention = retention_for(settings, older_than_hours)
    run = _Run(Context(settings, now or utcnow()), dry_run, CleanupReport(
        dry_run=dry_run, older_than_hours=older_than_hours,
        watermark=settings.cleanup_watermark,
        areas={area: AreaReport(retention[area]) for area in AREAS}))
    run.report.free_before = free_space(settings.data_root)
    run.finish_interrupted_runs()
    waiting = run.apply_retention(run.survey(retention), retention)
    run.clean_events(retention["events"])
    run.report.free_after = run.relieve_disk(waiting, run.free_now(free_space), free_space)
    for item in waiting:
        if item not in run.settled:
            run.area(item).kept += 1
    run.record()
    return run.report


@dataclass
class _Run:
    ctx: Context
    dry_run: bool
    report: CleanupReport
    done: set[Item] = field(default_factory=set)  # removed, or (dry run) would be
    settled: set[Item] = field(default_factory=set)  # done, or counted as skipped

    def area(self, item: Item | Held) -> AreaReport:
        return self.report.areas[item.area]

    @property
    def now(self) -> datetime:
        return self.ctx.now

    # --- steps --------------------------------------------------------------------------

    def finish_interrupted_runs(self) -> None:
        for area, path in leftover_trash(self.ctx.settings):
            if area not in self.report.areas:
                continue
            size = disk.tree_size(path)
            try:
                if not self.dry_run:
                    disk.delete(path)
            except OSError as exc:
                self._failed(self.report.areas[area], area, "left by an interrupted run", exc)
                continue
            self.report.areas[area].add_removed("left by an interrupted run", size, early=False)

    def survey(self, retention: dict[str, timedelta | None]) -> list[Item]:
        surveys = [survey_work, survey_quarantine, survey_receiving]
        if retention["datastore"] is not None:
            cutoff = self.now - retention["datastore"]
            surveys.append(lambda ctx: survey_datastore(ctx, cutoff))
        items: list[Item] = []
        for survey in surveys:
            found, held = survey(self.ctx)
            items.extend(i for i in found if retention[i.area] is not None)
            for hold in held:
                if retention[hold.area] is not None:
                    self.area(hold).skipped[hold.reason] += 1
        return items

    def apply_retention(self, items: list[Item], retention: dict[str, timedelta | None]
                        ) -> list[Item]:
        """Remove what is past its retention; returns what may go later (not old enough)."""
        waiting, due = [], []
        for item in items:
            kept_for = retention[item.area]
            if item.age(self.now) < kept_for:
                waiting.append(item)
            elif item.age(self.now) < item.floor:
                self.area(item).skipped[item.floor_reason] += 1
            else:
                due.append(item)
        whole_folders_due = {i.job_id for i in due if i.area == "work"}
        for item in oldest_first(due):
            if item.area == "uploads" and item.job_id in whole_folders_due:
                continue  # goes with its work folder
            self.remove(item, max(retention[item.area], item.floor),
                        f"retention {human_age(retention[item.area])}", early=False)
        return waiting

    def clean_events(self, kept_for: timedelta | None) -> None:
        if kept_for is None:
            return
        cutoff = self.now - kept_for
        may_go, of_running = count_old_events(self.ctx, cutoff)
        removed = may_go if self.dry_run else delete_old_events(self.ctx, cutoff)
        events = self.report.areas["events"]
        events.removed += removed
        if of_running:
            events.skipped["of a job still running"] += of_running

    def relieve_disk(self, waiting: list[Item], free: int,
                     free_space: disk.FreeSpaceProbe) -> int:
        """Below the watermark: take what is allowed to go early, oldest first, until above."""
        watermark = self.report.watermark
        if not watermark or free >= watermark:
            return free
        self.report.watermark_triggered = True
        log.warning("free disk %s under the data root is below the cleanup watermark %s: "
                    "removing what is allowed to go ahead of its retention, oldest first",
                    human_bytes(free), human_bytes(watermark))
        for item in oldest_first(i for i in waiting if i.area in WATERMARK_AREAS):
            if free >= watermark:
                break
            if item.age(self.now) < item.floor:
                self.area(item).skipped[item.floor_reason] += 1
                self.settled.add(item)
                continue
            freed = self.remove(item, item.floor, EARLY, early=True)
            free = free + freed if self.dry_run else free_space(self.ctx.settings.data_root)
        self.report.watermark_reached = free >= watermark
        if self.report.watermark_reached:
            log.warning("free disk back to %s, above the cleanup watermark %s",
                        human_bytes(free), human_bytes(watermark))
        else:
            log.error("free disk still %s, below the cleanup watermark %s: nothing else is "
                      "allowed to go (see what was skipped and why)",
                      human_bytes(free), human_bytes(watermark))
        return free

    def free_now(self, free_space: disk.FreeSpaceProbe) -> int:
        if self.dry_run:  # nothing was deleted: estimate from what would have been
            return (self.report.free_before or 0) + self.report.bytes_freed
        return free_space(self.ctx.settings.data_root)

    def record(self) -> None:
        """One audit event per run that removed anything (numbers only)."""
        report = self.report
        if self.dry_run or not report.removed:
            return
        with session_scope(self.ctx.db_url) as session:
            record_event(session, "cleanup",
                         f"removed {report.removed} item(s), {human_bytes(report.bytes_freed)}; "
                         f"skipped {report.skipped}"
                         + ("; disk below the watermark" if report.watermark_triggered else ""),
                         actor=ACTOR)

    # --- one item -------------------------------------------------------------------------

    def remove(self, item: Item, min_age: timedelta, because: str, *, early: bool) -> int:
        """Remove one item (or, dry run, account for it); returns the bytes freed."""
        area = self.area(item)
        self.settled.add(item)
        if self.dry_run:
            size = self._dry_size(item)
            self.done.add(item)
            area.add_removed(item.label, size, early=early)
            return size
        try:
            outcome = remove_item(self.ctx, item, min_age, because)
        except Exception as exc:
            self._failed(area, item.area, item.label, exc)
            return 0
        if outcome.held:
            area.skipped[outcome.held] += 1
        elif outcome.removed:
            self.done.add(item)
            area.add_removed(item.label, outcome.removed_bytes, early=early)
            return outcome.removed_bytes
        return 0

    def _failed(self, area: AreaReport, name: str, label: str, exc: Exception) -> None:
        self.report.errors += 1
        area.skipped[f"could not be removed ({describe(exc)})"] += 1
        log.error("%s %s: could not be removed (%s)", name, label, describe(exc))
        log.debug("details of the failure above", exc_info=True)

    def _dry_size(self, item: Item) -> int:
        """Its size minus what a dry run already counted inside it (a zip, then its folder)."""
        inside = sum(done.size for done in self.done
                     if all(item.paths[0] in p.parents for p in done.paths))
        return max(item.size - inside, 0)

