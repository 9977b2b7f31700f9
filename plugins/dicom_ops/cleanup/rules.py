"""What cleanup may remove and when: items, retentions, and why something must stay.

The rules never look at status strings themselves: whether a job, its transfer or
a series is still in flight is the lifecycles' answer (``jobs.lifecycle``,
``draw.transfer_lifecycle``, ``intake.series_lifecycle``). They take plain row
values, so unit tests call them directly; ``survey`` applies them to what is on
disk, ``remove`` applies them again under the row locks before anything goes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, and_, or_, select

from dicom_ops.cleanup.report import AREAS
from dicom_ops.config import Settings
from dicom_ops.db.models import Event, Job
from dicom_ops.draw.transfer_lifecycle import awaits_result, holds_server_data
from dicom_ops.intake.series_lifecycle import awaits_export, is_receiving
from dicom_ops.jobs.lifecycle import is_processing, is_queued, is_running

ACTOR = "cleanup"
# A series with an instance this recently (plus the quiet period) is receiving, whatever
# the retention or a run's override says: the listener finishes a round within the
# quiet period once its sender has gone.
RECEIVING_GRACE = timedelta(hours=1)
# Files written this recently are left alone (a write may still be finishing).
SETTLE = timedelta(minutes=15)
# Areas the watermark may take from early (the datastore holds the department's data,
# events are rows, not disk).
WATERMARK_AREAS = ("uploads", "work", "quarantine", "receiving")
EARLY = "disk below the cleanup watermark"


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
    if is_queued(job_status):
        return "job in queue"
    if is_processing(job_status):
        if awaits_result(transfer_status):
            return "job waiting for the DRAW server"
        return "job processing"
    if holds_server_data(transfer_status):
        return (f"job ended with its transfer still {transfer_status!r} (the DRAW server "
                "may hold its data; check the server)")
    return None


def series_hold_reason(state: str, running_job: bool) -> str | None:
    """Why a series' datastore folder must stay, or None."""
    if is_receiving(state):
        return "series receiving"
    if awaits_export(state):
        return "series waiting for export"
    if running_job:
        return "a job of the series is still running"
    return None


def old_events(cutoff: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """SQL conditions: (events older than ``cutoff`` that may go, those of running jobs)."""
    running = select(Job.id).where(is_running.clause)
    old = Event.at < cutoff
    return (and_(old, or_(Event.job_id.is_(None), Event.job_id.not_in(running))),
            and_(old, Event.job_id.in_(running)))


# --- how long things stay ------------------------------------------------------------------


def retention_for(settings: Settings, older_than_hours: float | None = None
                  ) -> dict[str, timedelta | None]:
    """Each area's retention (None: kept forever); an override replaces every one that is set.

    The override never switches on an area kept forever (datastore and events by default).
    """
    configured = {
        "uploads": _hours(settings.retention_uploads_hours),
        "work": _days(settings.retention_work_days),
        "quarantine": _days(settings.retention_quarantine_days),
        "receiving": _hours(settings.retention_receiving_hours),
        "datastore": _days(settings.retention_datastore_days),
        "events": _days(settings.retention_events_days),
    }
    if older_than_hours is None:
        return configured
    if older_than_hours < 0:
        raise ValueError("older_than_hours must be 0 or more")
    override = timedelta(hours=older_than_hours)
    return {area: None if kept is None else override for area, kept in configured.items()}


def receiving_floor(settings: Settings) -> timedelta:
    return RECEIVING_GRACE + timedelta(seconds=settings.quiet_seconds)


def oldest_first(items: Iterable[Item]) -> list[Item]:
    """Oldest first; at equal age a zip before its folder (the smaller step first)."""
    return sorted(items, key=lambda i: (i.since, AREAS.index(i.area), i.label))


def _hours(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(hours=value)


def _days(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(days=value)
