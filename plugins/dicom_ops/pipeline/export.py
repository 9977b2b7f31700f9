"""The export half of the loop, without Airflow: one job from its series to the DRAW server.

``prepare_upload`` does a job's whole preparation inside its own work folder
(select images -> de-identify -> store the maps -> egress check, through
``deid.deidentify_and_check`` -> zip + sha256);
``upload_prepared`` sends the zip. Both are safe to run again after a crash:
preparation starts its folder afresh, and every upload attempt is recorded before
it is sent, so one whose outcome is unknown is uploaded again only within
``DICOM_OPS_MAX_UPLOAD_ATTEMPTS`` (the import delivers one result per job).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import requests
from sqlalchemy import select

from dicom_ops.config import Settings
from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Job, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.deid import (
    BurnedInAnnotationError,
    CheckedDeidResult,
    DeidKeys,
    DifferentPatients,
    SeriesNotDeidentified,
    deidentify_and_check,
    load_recipe,
    store_deid_maps,
)
from dicom_ops.draw import transfer_lifecycle
from dicom_ops.draw.client import DrawClient
from dicom_ops.draw.errors import DrawError, DrawRejected, DrawTransientError
from dicom_ops.draw.transfer_lifecycle import (
    TransferStatus,
    is_sent,
    is_unknown_outcome,
    may_upload,
)
from dicom_ops.files import atomic_writer
from dicom_ops.jobs.images import images_for_job
from dicom_ops.jobs.lifecycle import set_stage
from dicom_ops.pipeline.errors import JobFailed
from dicom_ops.pipeline.workspace import job_work_dir
from dicom_ops.templates import draw_template_yaml, find_template, load_templates

log = logging.getLogger(__name__)

TEMPLATE_MEMBER = "autosegmentation_template.yml"
ZIP_NAME = "upload.zip"
# The zip while it is packed; the cleanup counts a leftover one as an upload.
PARTIAL_ZIP_NAME = ZIP_NAME + ".part"


@dataclass(frozen=True)
class PreparedUpload:
    job_id: int
    zip_path: Path
    sha256: str
    image_count: int


def prepare_upload(settings: Settings, job_id: int) -> PreparedUpload:
    """De-identify the job's images and pack them with the template; nothing is sent."""
    url = settings.db_url
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        template_name = job.template
        set_stage(session, job_id, "prepare")
        selections = images_for_job(session, job_id)
    template = find_template(load_templates(settings.templates_dir), template_name)
    if template is None:
        raise JobFailed("prepare", f"template {template_name!r} is no longer in the templates "
                                   f"folder {settings.templates_dir}")
    for selection in selections:
        if not selection.images:
            raise JobFailed("prepare", f"series #{selection.series_id}: no image in range "
                                       f"{selection.image_range or 'auto'}")

    work = job_work_dir(settings, job_id)
    deid_dir = work / "deid"
    shutil.rmtree(deid_dir, ignore_errors=True)  # a retry starts from a clean folder
    keys = DeidKeys.from_secret(settings.require_secret_key())
    recipe = load_recipe(settings.deid_recipe)
    with session_scope(url) as session:
        set_stage(session, job_id, "deidentify")

    def record_maps(deidentified: CheckedDeidResult) -> None:
        with session_scope(url) as session:
            store_deid_maps(session, job_id, deidentified, keys)
            set_stage(session, job_id, "egress check")

    result = _deidentify_and_check(selections, deid_dir, recipe, keys, record_maps,
                                   search_pixel_data=settings.egress_pixel_search)
    if result.violation is not None:
        shutil.rmtree(deid_dir, ignore_errors=True)
        raise JobFailed("egress check", f"identifier left in outgoing data: {result.violation}")

    with session_scope(url) as session:
        set_stage(session, job_id, "package")
    zip_path, sha256 = _pack(work, result.files, draw_template_yaml(template))
    shutil.rmtree(deid_dir, ignore_errors=True)  # the zip holds it now; keep the disk free
    with session_scope(url) as session:
        transfer = _transfer_for(session, job_id)
        transfer.zip_sha256 = sha256
        # A sent transfer keeps its task; an uploading one keeps its unknown attempts
        # (the next upload is another attempt, counted against the bound).
        if not (is_sent(transfer.status) or is_unknown_outcome(transfer.status)):
            transfer_lifecycle.move(session, transfer, TransferStatus.PENDING)
        record_event(session, "packed", f"{len(result.files)} images, zip sha256 {sha256[:12]}",
                     job_id=job_id, actor="draw_export")
    return PreparedUpload(job_id, zip_path, sha256, len(result.files))


def _deidentify_and_check(selections, deid_dir: Path, recipe, keys: DeidKeys,
                          record_maps: Callable[[CheckedDeidResult], None], *,
                          search_pixel_data: bool = False) -> CheckedDeidResult:
    """De-identify each series of the job into its own folder and check them together."""
    series = [([image.path for image in selection.images], deid_dir / f"{position:02d}")
              for position, selection in enumerate(selections)]
    try:
        return deidentify_and_check(series, recipe, keys, on_deidentified=record_maps,
                                    search_pixel_data=search_pixel_data)
    except SeriesNotDeidentified as failed:
        series_id = selections[failed.position].series_id
        if isinstance(failed.cause, BurnedInAnnotationError):
            raise JobFailed("deidentify", f"series #{series_id}: burned-in annotation "
                                          "(BurnedInAnnotation = YES); not sent") from None
        raise JobFailed("deidentify", f"series #{series_id}: {failed.cause}") from None
    except DifferentPatients:
        raise JobFailed("deidentify", "the job's series belong to different patients") from None


# Deflate pays on CT (12 bits stored in 16: about half the bytes to upload), but not on
# pixel data that does not shrink (noise-like, or JPEG / JPEG 2000 already), where it was
# most of the prepare step's time. One trial per series, on its first image, decides.
WORTH_DEFLATING = 0.9  # deflate a series whose first image shrinks below 90 %


def compression_for(first_image: Path) -> int:
    """``ZIP_DEFLATED`` if the series' first image shrinks when deflated, else ``ZIP_STORED``."""
    data = first_image.read_bytes()
    shrinks = len(zlib.compress(data, 1)) < WORTH_DEFLATING * len(data)
    return zipfile.ZIP_DEFLATED if shrinks else zipfile.ZIP_STORED


def _pack(work: Path, files: list[Path], template_yaml: str) -> tuple[Path, str]:
    """Zip the de-identified files (by their new names) and the template; atomic."""
    zip_path = work / ZIP_NAME
    digest = hashlib.sha256()
    per_series: dict[Path, int] = {}
    with atomic_writer(zip_path, temporary=work / PARTIAL_ZIP_NAME) as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED,
                             compresslevel=1) as zf:
            for path in files:  # <series position>/<new SOP Instance UID>.dcm
                if path.parent not in per_series:
                    per_series[path.parent] = compression_for(path)
                zf.write(path, f"{path.parent.name}/{path.name}",
                         compress_type=per_series[path.parent])
            zf.writestr(TEMPLATE_MEMBER, template_yaml)
        handle.seek(0)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return zip_path, digest.hexdigest()


def _transfer_for(session, job_id: int) -> Transfer:
    transfer = session.scalars(select(Transfer).where(Transfer.job_id == job_id)).one_or_none()
    if transfer is None:
        transfer = Transfer(job_id=job_id)
        transfer_lifecycle.move(session, transfer, TransferStatus.PENDING)
    return transfer


class UploadOutcomeUnknown(DrawTransientError):
    """An upload attempt ended without an answer (timeout, dropped connection): the server
    may hold a copy. Transient: the next try uploads again, within
    ``DICOM_OPS_MAX_UPLOAD_ATTEMPTS``, and the import delivers one result only."""


def upload_prepared(settings: Settings, job_id: int, client: DrawClient) -> str:
    """Upload the job's zip; returns the server's task id (recorded before returning).

    Every attempt is recorded (outcome unknown) before the zip is sent, and the
    server's answer in the first transaction after the HTTP response is read. An
    attempt that provably did not reach the server is retried freely (the caller's
    retries); one whose outcome is unknown raises :class:`UploadOutcomeUnknown` and
    the next call uploads again, until ``settings.max_upload_attempts`` attempts
    are unknown: then the job fails (permanent). A task an unanswered attempt made
    stays unknown to us (the DRAW API lists no tasks); a task we know of that is not
    delivered is confirmed by the import, so each job delivers one RTSTRUCT.
    """
    work = job_work_dir(settings, job_id)
    with session_scope(settings.db_url) as session:
        transfer = _transfer_for(session, job_id)
        if not may_upload(transfer.status):
            if transfer.server_task_id:
                return transfer.server_task_id  # uploaded by an earlier try of this task
            raise JobFailed("upload", f"nothing to upload (transfer is {transfer.status})")
        if not transfer.zip_sha256:
            raise JobFailed("upload", f"nothing to upload (transfer is {transfer.status})")
        _check_attempts_left(settings, session, job_id)
        sha256 = transfer.zip_sha256
    zip_path = work / ZIP_NAME
    if not zip_path.exists():
        raise JobFailed("upload", f"the packed zip is missing from {work}")

    client.health()  # DrawBusy propagates: the caller waits, the job does not fail
    with session_scope(settings.db_url) as session:
        attempt = transfer_lifecycle.start_attempt(session, _transfer_for(session, job_id),
                                                   actor="draw_export").number
        set_stage(session, job_id, "upload", actor="draw_export")
    try:
        task_id = client.upload(zip_path, sha256)
    except DrawError as exc:
        _raise_for_unanswered_attempt(settings, job_id, attempt, exc)
    deadline = utcnow() + timedelta(hours=settings.import_deadline_hours)
    with session_scope(settings.db_url) as session:  # first thing: the answer is durable
        transfer_lifecycle.record_answer(session, job_id, attempt, task_id,
                                         deadline=deadline, actor="draw_export")
        set_stage(session, job_id, "waiting for server", actor="draw_export")
    log.info("job %d uploaded as server task %s (attempt %d)", job_id, task_id, attempt)
    return task_id


def _check_attempts_left(settings: Settings, session, job_id: int) -> None:
    unknown = transfer_lifecycle.unknown_attempts(session, job_id)
    if unknown >= settings.max_upload_attempts:
        raise JobFailed("upload", _attempts_used_up(unknown, settings.max_upload_attempts))


def _attempts_used_up(unknown: int, bound: int) -> str:
    return (f"no answer to {unknown} upload attempt(s) (timeout or dropped connection; "
            f"DICOM_OPS_MAX_UPLOAD_ATTEMPTS={bound}): gave up; the server may hold a copy "
            "we cannot name, no result of it is delivered")


def _raise_for_unanswered_attempt(settings: Settings, job_id: int, attempt: int,
                                  exc: DrawError) -> NoReturn:
    """Record how attempt ``attempt`` ended without a task id, and raise what the caller
    should see: the original error (retry freely), ``UploadOutcomeUnknown`` (upload
    again), or ``JobFailed`` (refused for good, or the bound is used up)."""
    detail = f"{type(exc).__name__}: {exc}"
    if provably_not_received(exc):
        with session_scope(settings.db_url) as session:
            transfer_lifecycle.record_refused(session, job_id, attempt, detail)
        if isinstance(exc, DrawRejected):
            raise JobFailed("upload", f"the DRAW server refused the upload: {exc}") from None
        raise exc
    with session_scope(settings.db_url) as session:
        unknown = transfer_lifecycle.record_no_answer(session, job_id, attempt, detail)
    log.warning("job %d: upload attempt %d ended without an answer (%s)", job_id, attempt,
                type(exc).__name__)
    if unknown >= settings.max_upload_attempts:
        raise JobFailed("upload", _attempts_used_up(unknown, settings.max_upload_attempts)
                        ) from None
    raise UploadOutcomeUnknown(
        f"upload attempt {attempt} of job {job_id} ended without an answer ({exc}); "
        f"uploading again ({unknown} of {settings.max_upload_attempts} attempts unknown)",
        endpoint=exc.endpoint) from None


def provably_not_received(exc: DrawError) -> bool:
    """True when the server certainly did not accept the upload.

    An HTTP error answer means the server saw the request and gave no task id; a
    connection that was never made means nothing was sent. A timeout or a dropped
    connection after sending proves nothing.
    """
    if exc.status_code is not None:
        return True
    if isinstance(exc, DrawTransientError):
        cause = exc.__cause__
        return isinstance(cause, requests.ConnectTimeout) or (
            isinstance(cause, requests.ConnectionError)
            and "NewConnectionError" in repr(cause)
        )
    return False
