"""What a person must be told, found in the app DB, and who has been told already.

Three outcomes need a person (issue 12): a job **failed**; a job is **stuck**
(``processing`` with no activity for ``DICOM_OPS_NOTIFY_STUCK_MINUTES``); the DRAW
server is **unreachable** for longer than ``DICOM_OPS_NOTIFY_DRAW_UNREACHABLE_MINUTES``.
This module finds them and remembers, per channel (webhook, e-mail), that they were
sent; sending is the adapters' business (``dicom_ops.airflow.notifiers``), so nothing
here imports Airflow.

The audit log is the memory, so no table is needed:
- a ``notified`` event (message ``"<event> via <channel>"``) per notice and channel.
  A failed job is told once per channel; a stuck job and an outage once per episode
  (a notified event newer than the episode's start counts), so a job that moves on and
  sticks again, or a second outage, is told again. A failed send records nothing, and
  the next watchdog run tries again.
- the DRAW server's reachability as changes only: ``draw_contact_lost`` when a check
  fails after a success (or first of all), ``draw_contact_back`` when one succeeds after
  a failure; a healthy server adds no rows.

Notification events never touch ``job.updated_at``, which recovery and "stuck" read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_ops.db.audit import NOTIFIED_EVENT, record_event
from dicom_ops.db.models import Event, Job, Transfer, utcnow
from dicom_ops.jobs.lifecycle import has_failed, is_processing
from dicom_ops.pipeline.errors import redact_identifiers

NOTIFIED = NOTIFIED_EVENT  # a person was told: not activity on the job (jobs.claims)
CONTACT_LOST = "draw_contact_lost"
CONTACT_BACK = "draw_contact_back"
# A failed job is told at once by the failing task's callback; the watchdog tells the
# rest (jobs failed by the poll or by recovery, and sends that failed), after a grace
# period that keeps it from racing the callback, and never about old history.
FAILED_GRACE = timedelta(minutes=2)
FAILED_LOOKBACK = timedelta(days=1)


class NoticeEvent(StrEnum):
    JOB_FAILED = "job_failed"
    JOB_STUCK = "job_stuck"
    DRAW_UNREACHABLE = "draw_unreachable"


@dataclass(frozen=True)
class Notice:
    """One thing to tell: ids, stage and reason only (reasons already name no patient)."""

    event: NoticeEvent
    reason: str
    job_id: int | None = None
    stage: str | None = None
    since: datetime | None = None  # when it failed / last moved / stopped answering
    job_run_id: str | None = None  # the export run that claimed the job, for a link

    @property
    def subject(self) -> str:
        if self.event is NoticeEvent.JOB_FAILED:
            return f"dicom-ops: job {self.job_id} failed at {self.stage}"
        if self.event is NoticeEvent.JOB_STUCK:
            return f"dicom-ops: job {self.job_id} stuck at {self.stage}"
        return "dicom-ops: DRAW server unreachable"

    def payload(self, *, link: str | None, dag_id: str | None,
                run_id: str | None) -> dict[str, Any]:
        """The webhook's JSON (and the e-mail's facts). The reason is redacted once more:
        a UID-like token must never leave, whoever wrote the reason."""
        return {
            "event": self.event.value,
            "job_id": self.job_id,
            "stage": self.stage,
            "reason": redact_identifiers(self.reason),
            "since": self.since.isoformat() if self.since else None,
            "link": link,
            "dag_id": dag_id,
            "run_id": run_id,
        }


def _notified_via(notice: Notice, channel: str) -> str:
    return f"{notice.event.value} via {channel}"


def was_notified(session: Session, notice: Notice, channel: str) -> bool:
    query = select(Event.id).where(Event.kind == NOTIFIED,
                                   Event.message == _notified_via(notice, channel))
    query = query.where(Event.job_id == notice.job_id if notice.job_id is not None
                        else Event.job_id.is_(None))
    if notice.event is not NoticeEvent.JOB_FAILED and notice.since is not None:
        query = query.where(Event.at >= notice.since)  # once per episode
    return session.scalar(query.limit(1)) is not None


def record_notified(session: Session, notice: Notice, channel: str, *, actor: str) -> None:
    record_event(session, NOTIFIED, _notified_via(notice, channel), job_id=notice.job_id,
                 actor=actor)


def failed_job_notice(session: Session, job_id: int) -> Notice | None:
    """The notice for a failed job (stage and reason from its row), or None if it has not
    failed (cancelled, or a callback for a job that a later run finished)."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or not has_failed(job.status):
        return None
    return Notice(NoticeEvent.JOB_FAILED, job.error or "no reason recorded", job_id=job.id,
                  stage=job.stage, since=job.finished_at, job_run_id=job.claimed_by)


def due_notices(session: Session, channel: str, *, stuck_after: timedelta,
                unreachable_after: timedelta, now: datetime | None = None) -> list[Notice]:
    """Everything ``channel`` has not been told yet: failed jobs, stuck jobs, the outage."""
    now = now or utcnow()
    due = [*_failed_jobs(session, now), *_stuck_jobs(session, now, stuck_after)]
    outage = _unreachable(session, now, unreachable_after)
    if outage is not None:
        due.append(outage)
    return [notice for notice in due if not was_notified(session, notice, channel)]


def _failed_jobs(session: Session, now: datetime) -> list[Notice]:
    ids = session.scalars(
        select(Job.id).where(has_failed.clause, Job.finished_at >= now - FAILED_LOOKBACK,
                             Job.finished_at <= now - FAILED_GRACE).order_by(Job.id)
    ).all()
    return [notice for job_id in ids if (notice := failed_job_notice(session, job_id))]


def _stuck_jobs(session: Session, now: datetime, stuck_after: timedelta) -> list[Notice]:
    """Processing jobs nothing has moved (stage, status) or polled for ``stuck_after``."""
    cutoff = now - stuck_after
    rows = session.execute(
        select(Job, Transfer.last_polled_at).outerjoin(Transfer, Transfer.job_id == Job.id)
        .where(is_processing.clause, Job.updated_at < cutoff).order_by(Job.id)
    ).all()
    minutes = int(stuck_after.total_seconds() // 60)
    notices = []
    for job, polled in rows:
        last = max(job.updated_at, polled) if polled else job.updated_at
        if last >= cutoff:
            continue  # the import still polls it: waiting for the server is not stuck
        notices.append(Notice(
            NoticeEvent.JOB_STUCK,
            f"processing at stage {job.stage} with no activity for more than {minutes} "
            f"minutes (since {last:%Y-%m-%d %H:%M} UTC): nothing is working on it",
            job_id=job.id, stage=job.stage, since=last, job_run_id=job.claimed_by))
    return notices


# --- the DRAW server's reachability ---------------------------------------------------------


def _last_contact_change(session: Session) -> Event | None:
    return session.scalars(
        select(Event).where(Event.kind.in_((CONTACT_LOST, CONTACT_BACK)),
                            Event.job_id.is_(None))
        .order_by(Event.at.desc(), Event.id.desc()).limit(1)
    ).first()


def draw_unreachable_since(session: Session) -> datetime | None:
    """When the current outage began (the first failed check), or None if it answers."""
    last = _last_contact_change(session)
    return last.at if last is not None and last.kind == CONTACT_LOST else None


def record_draw_contact(session: Session, *, reachable: bool, detail: str = "",
                        actor: str = "watchdog") -> None:
    """Record the outcome of one check of the DRAW server, if it changes the picture.
    ``detail`` (why it failed) names the endpoint and error class, never patient data."""
    down_since = draw_unreachable_since(session)
    if reachable and down_since is not None:
        record_event(session, CONTACT_BACK, "the DRAW server answers again", actor=actor)
    elif not reachable and down_since is None:
        record_event(session, CONTACT_LOST, redact_identifiers(detail)[:500], actor=actor)


def _unreachable(session: Session, now: datetime, after: timedelta) -> Notice | None:
    last = _last_contact_change(session)
    if last is None or last.kind != CONTACT_LOST or now - last.at <= after:
        return None
    minutes = int((now - last.at).total_seconds() // 60)
    return Notice(NoticeEvent.DRAW_UNREACHABLE,
                  f"the DRAW server has not answered for {minutes} minutes "
                  f"(since {last.at:%Y-%m-%d %H:%M} UTC): {last.message}", since=last.at)
