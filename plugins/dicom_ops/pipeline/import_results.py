"""The import half of the loop, without Airflow: poll the server, then for each finished
task fetch -> verify -> validate and re-identify (fail closed) -> deliver -> confirm.

Every step records where it got to in the transfer row, so a retried or restarted
task resumes: a delivered RTSTRUCT is not fetched again, a confirmed one not confirmed
twice, and the server is told "received" only after delivery succeeded.

One RTSTRUCT per job: the server may hold several tasks for one job (it was uploaded
again, see ``export.upload_prepared``). Each poll also follows the job's other tasks
we know the id of (``transfer_lifecycle.further_results``): the first to finish while
the job still waits becomes its result; every other one is confirmed to the server
when it finishes (so the server deletes its copy), never fetched, never delivered,
and recorded as an audit event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, or_, select

from dicom_ops.config import Settings
from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Event, Job, JobSeries, Series, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.deid import DeidKeys, load_subject, load_uid_map
from dicom_ops.delivery.destinations import Destination, protocol, send_to
from dicom_ops.delivery.origin import DeliveryError, deliver_rtstruct
from dicom_ops.delivery.validation import RtstructRejected
from dicom_ops.draw import transfer_lifecycle
from dicom_ops.draw.client import DrawClient
from dicom_ops.draw.errors import (
    DrawBusy,
    DrawChecksumMismatch,
    DrawError,
    DrawNotFound,
    DrawRejected,
    DrawTransientError,
)
from dicom_ops.draw.transfer_lifecycle import (
    FurtherResult,
    ServerCopy,
    TransferStatus,
    awaits_result,
    is_ready_to_finish,
    needs_confirm,
    needs_fetch,
)
from dicom_ops.jobs.lifecycle import fail_job, finish_job, get_job, is_processing, set_stage
from dicom_ops.pipeline.errors import JobFailed
from dicom_ops.pipeline.workspace import job_work_dir

log = logging.getLogger(__name__)

FETCH_ATTEMPTS = 3


@dataclass
class PollReport:
    ready: list[int] = field(default_factory=list)  # job ids to fetch and deliver
    failed: list[int] = field(default_factory=list)
    waiting: int = 0
    unreachable: int = 0

    def summary(self) -> dict[str, int]:
        return {"ready": len(self.ready), "failed": len(self.failed), "waiting": self.waiting,
                "unreachable": self.unreachable}


def pending_transfers(settings: Settings) -> list[tuple[int, str]]:
    """(job id, server task id) of every transfer the server is still working on."""
    with session_scope(settings.db_url) as session:
        rows = session.execute(
            select(Transfer.job_id, Transfer.server_task_id)
            .join(Job, Job.id == Transfer.job_id)
            .where(awaits_result.clause, is_processing.clause)
            .order_by(Transfer.id)
        ).all()
    return [(job_id, task_id) for job_id, task_id in rows]


def poll_transfers(settings: Settings, client: DrawClient, *, now: datetime | None = None
                   ) -> PollReport:
    """Ask the server about every waiting transfer; returns what is ready to fetch."""
    report = PollReport()
    follow_up_further_results(settings, client, now=now)
    for job_id, task_id in pending_transfers(settings):
        try:
            status = client.status(task_id)
        except DrawNotFound:
            _fail(settings, job_id, "server", "task not found on server")
            report.failed.append(job_id)
            continue
        except (DrawBusy, DrawTransientError) as exc:
            log.warning("job %d: status not available this time (%s)", job_id, exc)
            report.unreachable += 1
            continue
        moment = now or utcnow()
        with session_scope(settings.db_url) as session:
            transfer = transfer_lifecycle.locked(session, job_id)
            if transfer is None or not awaits_result(transfer.status):
                continue  # an overlapping run's poll got there first: the job is its
            transfer.server_status = status.raw[:128]
            transfer.poll_attempts += 1
            transfer.last_polled_at = moment
            if status.state == "completed":
                transfer_lifecycle.move(session, transfer, TransferStatus.COMPLETED,
                                        event="server completed", message=status.raw,
                                        actor="draw_import")
                transfer.completed_at = moment
            elif status.state == "processing":
                transfer_lifecycle.move(session, transfer, TransferStatus.PROCESSING)
            deadline = transfer.deadline_at
        if status.state == "completed":
            report.ready.append(job_id)
        elif status.state == "failed":
            _fail(settings, job_id, "server", f"the DRAW server failed the task: "
                                              f"{status.error or status.raw}")
            report.failed.append(job_id)
        elif deadline is not None and moment >= deadline:
            hours = settings.import_deadline_hours
            _fail(settings, job_id, "server", f"timed out: not finished on the server after "
                                              f"{hours} h (last status {status.raw!r})")
            report.failed.append(job_id)
        else:
            report.waiting += 1
    report.ready.extend(_take_over_left_over_ready(
        settings, exclude=report.ready, idle_for=timedelta(minutes=settings.import_interval_minutes),
        now=now))
    return report


def follow_up_further_results(settings: Settings, client: DrawClient, *,
                              job_id: int | None = None, now: datetime | None = None) -> int:
    """Poll the job's tasks that are not its result; adopt the first finished one while
    the job waits, confirm every other finished one without fetching it. Returns how
    many were settled (confirmed, failed, gone or abandoned)."""
    with session_scope(settings.db_url) as session:
        results = transfer_lifecycle.further_results(session, job_id=job_id)
    settled = 0
    moment = now or utcnow()
    for result in results:
        try:
            status = client.status(result.task_id)
        except DrawNotFound:
            settled += _settle(settings, result, ServerCopy.GONE, "the server no longer "
                               "knows it")
            continue
        except (DrawBusy, DrawTransientError) as exc:
            log.warning("job %d: status of further server task not available (%s)",
                        result.job_id, type(exc).__name__)
            continue
        if status.state == "completed":
            with session_scope(settings.db_url) as session:
                if transfer_lifecycle.adopt_result(session, result, actor="draw_import"):
                    continue  # the poll below finds it completed and delivers it
            try:
                client.confirm(result.task_id)  # never fetched: the job has its result
            except (DrawBusy, DrawTransientError, DrawRejected) as exc:
                log.warning("job %d: confirming a further result failed (%s); next poll",
                            result.job_id, type(exc).__name__)
                continue
            settled += _settle(settings, result, ServerCopy.CONFIRMED,
                               "confirmed to the server (it deletes its copy), not delivered")
        elif status.state == "failed":
            settled += _settle(settings, result, ServerCopy.FAILED, "the server failed it")
        elif moment - result.started_at >= timedelta(hours=settings.import_deadline_hours):
            settled += _settle(settings, result, ServerCopy.ABANDONED,
                               f"not finished after {settings.import_deadline_hours} h; "
                               "no longer polled")
    return settled


def _settle(settings: Settings, result: FurtherResult, fate: ServerCopy, what: str) -> int:
    with session_scope(settings.db_url) as session:
        transfer_lifecycle.settle_server_copy(
            session, result.job_id, result.task_id, fate, actor="draw_import",
            message=f"server task {result.task_id} (attempt {result.attempt}): {what}")
    log.info("job %d: further server task of attempt %d %s", result.job_id, result.attempt,
             fate.value)
    return 1


def _take_over_left_over_ready(settings: Settings, exclude: Sequence[int], *,
                               idle_for: timedelta, now: datetime | None = None) -> list[int]:
    """Transfers completed or delivered earlier whose delivery or confirm did not finish,
    and that nobody has touched for ``idle_for`` (one import interval): their run was lost.

    Runs of draw_import overlap, so a result another run is delivering right now must
    not be taken: every step of a delivery records a stage (job row) or an event, and a
    takeover records one too, under the job's row lock, so exactly one run takes it.
    """
    cutoff = (now or utcnow()) - idle_for
    last_event = (select(func.max(Event.at)).where(Event.job_id == Job.id)
                  .correlate(Job).scalar_subquery())
    taken: list[int] = []
    with session_scope(settings.db_url) as session:
        rows = session.scalars(
            select(Job).join(Transfer, Transfer.job_id == Job.id)
            .where(is_ready_to_finish.clause, is_processing.clause, Job.updated_at < cutoff,
                   or_(last_event.is_(None), last_event < cutoff))
            .order_by(Job.id)
            .with_for_update(of=Job, skip_locked=True)
        ).all()
        for job in rows:
            if job.id in exclude:
                continue
            job.updated_at = utcnow()
            record_event(session, "resumed", f"delivery resumed at stage {job.stage} "
                         "(its run was lost)", job_id=job.id, actor="draw_import")
            taken.append(job.id)
    return taken


def fetch_and_deliver(settings: Settings, job_id: int, client: DrawClient,
                      destinations: Sequence[Destination] = ()) -> Path:
    """Bring one finished result home; returns the delivered file. Raises JobFailed."""
    with session_scope(settings.db_url) as session:
        transfer = _transfer(session, job_id)
        task_id, status = transfer.server_task_id, transfer.status
        delivered = Path(transfer.delivered_path) if transfer.delivered_path else None
    if needs_fetch(status):
        delivered = _fetch_and_write(settings, job_id, task_id, client)
        for node in destinations:
            with session_scope(settings.db_url) as session:
                set_stage(session, job_id, f"forward to {node}", actor="draw_import")
            attempts = send_to(node, [delivered], settings.ae_title)
            with session_scope(settings.db_url) as session:
                record_event(session, "forwarded", f"{protocol(node)} to {node} after "
                             f"{attempts} attempt(s)", job_id=job_id, actor="draw_import")
        with session_scope(settings.db_url) as session:
            transfer = _transfer(session, job_id)
            transfer_lifecycle.move(session, transfer, TransferStatus.DELIVERED)
            transfer.delivered_at = utcnow()
            transfer.delivered_path = str(delivered)
    elif not needs_confirm(status):
        raise JobFailed("deliver", f"transfer is {status}, not ready to deliver")

    with session_scope(settings.db_url) as session:
        set_stage(session, job_id, "confirm", actor="draw_import")
    client.confirm(task_id)  # only now: the server deletes its copy after this
    with session_scope(settings.db_url) as session:
        transfer = _transfer(session, job_id)
        transfer_lifecycle.move(session, transfer, TransferStatus.CONFIRMED)
        transfer.confirmed_at = utcnow()
        transfer_lifecycle.settle_server_copy(session, job_id, task_id, ServerCopy.CONFIRMED)
        finish_job(session, job_id, turnaround_seconds=_turnaround(session, job_id,
                                                                   transfer.delivered_at),
                   actor="draw_import")
    log.info("job %d finished: RTSTRUCT delivered and confirmed", job_id)
    try:  # the job's other tasks, if finished; the next poll does what is left
        follow_up_further_results(settings, client, job_id=job_id)
    except DrawError as exc:
        log.warning("job %d: further results not followed up now (%s)", job_id,
                    type(exc).__name__)
    assert delivered is not None
    return delivered


def _fetch_and_write(settings: Settings, job_id: int, task_id: str, client: DrawClient) -> Path:
    work = job_work_dir(settings, job_id)
    work.mkdir(parents=True, exist_ok=True)
    download = work / "rtstruct.dcm"
    with session_scope(settings.db_url) as session:
        set_stage(session, job_id, "fetch", actor="draw_import")
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        try:
            sha256 = client.download_rtstruct(task_id, download)
            break
        except DrawChecksumMismatch:
            log.warning("job %d: RTSTRUCT checksum mismatch (attempt %d of %d)", job_id,
                        attempt, FETCH_ATTEMPTS)
        except DrawNotFound:
            raise JobFailed("fetch", "task not found on server") from None
    else:
        raise JobFailed("fetch", f"the RTSTRUCT did not match the server's checksum in "
                                 f"{FETCH_ATTEMPTS} downloads; nothing was delivered")

    keys = DeidKeys.from_secret(settings.require_secret_key())
    with session_scope(settings.db_url) as session:
        transfer = _transfer(session, job_id)
        transfer.rtstruct_sha256 = sha256
        set_stage(session, job_id, "validate and re-identify", actor="draw_import")
        uid_map = load_uid_map(session, job_id)
        stored = load_subject(session, job_id, keys)
        origin = _origin_folder(session, job_id)
    if stored is None or not uid_map:
        raise JobFailed("re-identify", "the job has no stored UID or subject map; "
                                       "nothing can be re-identified")
    pseudonym, _offset_days, subject = stored
    try:
        return deliver_rtstruct(download, origin, job_id=job_id, uid_map=uid_map,
                                subject=subject, pseudonym=pseudonym,
                                uid_root=settings.uid_root,
                                quarantine_dir=settings.quarantine_dir)
    except RtstructRejected as rejected:
        raise JobFailed("validate", f"RTSTRUCT rejected, kept in quarantine: "
                                    f"{rejected.reason}") from None
    except DeliveryError as exc:
        raise JobFailed("deliver", str(exc)) from None
    finally:
        download.unlink(missing_ok=True)


def _origin_folder(session, job_id: int) -> Path:
    """The folder of the job's first series: where its CT came from."""
    series = session.scalars(
        select(Series).join(JobSeries, JobSeries.series_id == Series.id)
        .where(JobSeries.job_id == job_id).order_by(JobSeries.position)
    ).first()
    folder = series.origin_folder or series.folder
    return Path(folder)


def _turnaround(session, job_id: int, delivered_at: datetime | None) -> float | None:
    ready = session.scalars(
        select(Series.ready_at).join(JobSeries, JobSeries.series_id == Series.id)
        .where(JobSeries.job_id == job_id)
    ).all()
    known = [moment for moment in ready if moment is not None]
    if not known or delivered_at is None:
        return None
    return (delivered_at - min(known)).total_seconds()


def _transfer(session, job_id: int) -> Transfer:
    return session.scalars(select(Transfer).where(Transfer.job_id == job_id)).one()


def _fail(settings: Settings, job_id: int, stage: str, reason: str) -> None:
    with session_scope(settings.db_url) as session:
        transfer = transfer_lifecycle.locked(session, job_id)
        if transfer is None or not awaits_result(transfer.status):
            return  # an overlapping run's poll has settled it already
        transfer_lifecycle.move(session, transfer, TransferStatus.FAILED)
        if is_processing(get_job(session, job_id).status):
            fail_job(session, job_id, stage=stage, error=reason, actor="draw_import")
    log.warning("job %d failed at %s: %s", job_id, stage, reason)
