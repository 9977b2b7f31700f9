"""Running one job of a service for one item: the dependency check, the registry
callback's gate, the worker with its context, and the record of how it ended.

The same function runs a job from its Airflow task (``ServiceJobOperator``) and from
``dicom-ops services run``. Outcomes:

- skipped: a job it depends on (or a pre-service) did not succeed for this item, or its
  registry callback said no (``False``, or ``(False, "why")``); the reason is recorded
  and logged, and jobs depending on it are skipped in turn;
- failed: the item's data is gone, or the callback or worker raised, or returned
  something that is not a small dict; ``ServiceJobFailed`` carries the reason;
- succeeded: the worker's dict is recorded as the job's result.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicom_ops.config import Settings
from dicom_ops.db.session import session_scope
from dicom_ops.delivery.cstore import DicomNode, send_files
from dicom_ops.delivery.origin import DeliveryError, check_folder_is_this_patients, write_new_file
from dicom_ops.services.context import PhiSafeLogger, WorkerContext, identifiers_of, redact
from dicom_ops.services.definition import JobDefinition, JobKind, ServiceDefinition
from dicom_ops.services.entrypoints import load_entry_point
from dicom_ops.services.items import ItemData, ItemUnavailable, first_header, item_data
from dicom_ops.services.runs import (
    RunStatus,
    encode_result,
    end_run,
    job_statuses,
    start_run,
)

log = logging.getLogger(__name__)
NodeResolver = Callable[[str], DicomNode]


class ServiceJobFailed(RuntimeError):
    """The job failed for this item; the message is the recorded reason (no PHI)."""


@dataclass(frozen=True)
class JobOutcome:
    status: RunStatus
    reason: str | None = None
    result: dict[str, Any] | None = None


def output_folder(settings: Settings, service: str, item_id: int, job_name: str) -> Path:
    return settings.results_dir / "services" / service / f"item-{item_id}" / job_name


def prerequisites(definition: ServiceDefinition, job: JobDefinition, event: str) -> list[str]:
    """The jobs that must have succeeded first: its dependsOn, and for normal and post
    jobs every enabled pre-service of the same event."""
    pre = [] if job.kind is JobKind.PRE else [
        other.job_name for other in definition.jobs_for(event)
        if other.kind is JobKind.PRE and other.job_name != job.job_name]
    return [*pre, *[name for name in job.depends_on if name not in pre]]


def run_job(settings: Settings, definition: ServiceDefinition, job_name: str, item_id: int,
            *, nodes: NodeResolver | None = None,
            timeout_errors: tuple[type[BaseException], ...] = ()) -> JobOutcome:
    job = definition.job(job_name)
    where = f"service {definition.name}, job {job_name}, item {item_id}"

    def ended(status: RunStatus, reason: str | None = None, result: str | None = None) -> None:
        with session_scope(settings.db_url) as session:
            end_run(session, item_id, job_name, status, reason, result)

    try:
        with session_scope(settings.db_url) as session:
            data = item_data(session, item_id)
            statuses = job_statuses(session, item_id)
    except ItemUnavailable as exc:
        ended(RunStatus.FAILED, str(exc))
        raise ServiceJobFailed(str(exc)) from None
    for name in prerequisites(definition, job, data.event):
        if statuses.get(name) is not RunStatus.SUCCEEDED:
            how = {RunStatus.FAILED: "failed", RunStatus.SKIPPED: "was skipped",
                   RunStatus.RUNNING: "has not finished"}.get(statuses.get(name), "did not run")
            reason = f"{'pre-service' if name not in job.depends_on else 'dependency'} " \
                     f"{name!r} {how} for this item"
            ended(RunStatus.SKIPPED, reason)
            log.info("%s (%s): skipped: %s", where, data.label, reason)
            return JobOutcome(RunStatus.SKIPPED, reason)
    try:
        headers = first_header(data)
    except ItemUnavailable as exc:
        ended(RunStatus.FAILED, str(exc))
        raise ServiceJobFailed(str(exc)) from None
    identifiers = identifiers_of(headers)

    def failed(what: str, exc: BaseException) -> ServiceJobFailed:
        reason = f"{what}: {type(exc).__name__}: {redact(str(exc), identifiers)}"
        log.debug("%s failed", where, exc_info=True)
        ended(RunStatus.FAILED, reason)
        return ServiceJobFailed(reason)

    params = dict(job.params)
    if job.registry_entry:
        try:
            callback = load_entry_point(definition.folder, job.registry_entry, "registryEntry")
            accepted, added, why = gate(callback(headers, dict(params)), job.registry_entry)
        except (Exception, SystemExit) as exc:  # the service's own code
            raise failed("registry callback", exc) from None
        if not accepted:
            ended(RunStatus.SKIPPED, why)
            log.info("%s (%s): skipped: %s", where, data.label, why)
            return JobOutcome(RunStatus.SKIPPED, why)
        params.update(added)

    with session_scope(settings.db_url) as session:
        start_run(session, item_id, job_name)
    context = _context(settings, definition, job, data, headers, params, identifiers, nodes)
    try:
        worker = load_entry_point(definition.folder, job.worker_entry, "workerEntry")
        result = encode_result(worker(context))
    except timeout_errors:
        reason = f"timed out after {job.timeout} s (the job's timeout)"
        ended(RunStatus.FAILED, reason)
        log.error("%s (%s): %s", where, data.label, reason)
        raise
    except (Exception, SystemExit) as exc:  # its code, a missing entry, a bad result
        raise failed("worker", exc) from None
    ended(RunStatus.SUCCEEDED, None, result)
    log.info("%s (%s): succeeded", where, data.label)
    return JobOutcome(RunStatus.SUCCEEDED, None, json.loads(result) if result else None)


def gate(answer: Any, entry: str) -> tuple[bool, dict[str, Any], str]:
    """A registry callback's answer as (run it?, params to add, reason for a skip).

    ``True``/``None`` run it; ``False`` skips it; a dict runs it with those params;
    ``(False, "why")`` skips it saying why; ``(True, {...})`` runs it with params."""
    default_reason = f"registry callback {entry} returned False"
    if answer is None or answer is True:
        return True, {}, ""
    if answer is False:
        return False, {}, default_reason
    if isinstance(answer, Mapping):
        return True, dict(answer), ""
    if isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], bool):
        accepted, extra = answer
        if not accepted:
            return False, {}, (f"registry callback {entry}: {extra}" if isinstance(extra, str)
                               and extra else default_reason)
        if isinstance(extra, Mapping) or extra is None:
            return True, dict(extra or {}), ""
    raise TypeError(f"registry callback {entry} returned a {type(answer).__name__}; expected "
                    "True, False, a dict of params, or (bool, params or reason)")


def _context(settings: Settings, definition: ServiceDefinition, job: JobDefinition,
             data: ItemData, headers: Dataset, params: dict[str, Any],
             identifiers: list[str], nodes: NodeResolver | None) -> WorkerContext:
    out = output_folder(settings, definition.name, data.item_id, job.job_name)
    if out.exists():  # a job run again starts with an empty output folder
        shutil.rmtree(out)
    out.mkdir(parents=True)
    logger = PhiSafeLogger(logging.getLogger(f"dicom_ops.services.{definition.name}."
                                             f"{job.job_name}"), identifiers)

    def deliver(path: Path, destinations: Sequence[str] | None) -> Path:
        return deliver_output(settings, data, path, destinations, nodes)

    return WorkerContext(service=definition.name, job=job.job_name, event=str(data.event),
                         item_id=data.item_id, folder=data.folder,
                         series_folders=data.series_folders, output_folder=out,
                         headers=headers, params=params, log=logger,
                         ae_title=settings.ae_title, rtstruct=data.rtstruct,
                         _deliver=deliver, _nodes=nodes)


def deliver_output(settings: Settings, data: ItemData, path: Path,
                   destinations: Sequence[str] | None, nodes: NodeResolver | None) -> Path:
    """A DICOM object a service made, delivered the way RTSTRUCTs are: written atomically
    into the origin folder as ``<Modality>.<SOPInstanceUID>.dcm`` (never replacing a
    different file; refused when the folder holds another patient's images), then sent
    by C-STORE to each destination. No re-identification: services see identified data."""
    ds = dcmread(path, stop_before_pixels=False)
    sop = str(ds.get("SOPInstanceUID", ""))
    if not UID(sop).is_valid:
        raise DeliveryError("the output's SOP Instance UID is not a valid UID")
    modality = "".join(ch for ch in str(ds.get("Modality", "OT")) if ch.isalnum()) or "OT"
    folder = data.origin_folder
    if folder is None or not folder.is_dir():
        raise DeliveryError(f"{data.label}: the origin folder no longer exists; not delivered")
    check_folder_is_this_patients(folder, str(ds.get("PatientID", "")))
    target = write_new_file(folder / f"{modality}.{sop}.dcm", path.read_bytes())
    conn_ids = settings.destinations if destinations is None else tuple(destinations)
    if conn_ids and nodes is None:
        raise DeliveryError("no DICOM connections available to send the output")
    for conn_id in conn_ids:
        send_files([target], nodes(conn_id), settings.ae_title)
    log.info("%s: output delivered to the origin folder and %d destination(s)", data.label,
             len(conn_ids))
    return target


class JobTimedOut(Exception):
    """A job ran past its ``timeout`` in ``run_item`` (Airflow has its own for tasks)."""


@contextmanager
def _time_limit(seconds: int | None) -> Iterator[None]:
    """SIGALRM after ``seconds`` raises JobTimedOut in the job (main thread only)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise JobTimedOut(f"past {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_item(settings: Settings, definition: ServiceDefinition, item_id: int, event: str,
             *, nodes: NodeResolver | None = None) -> list[tuple[str, JobOutcome]]:
    """Every enabled job of ``event`` for one item, in run order, in this process
    (``dicom-ops services run``), each within its ``timeout``; a failed job is recorded
    and the next one still runs."""
    outcomes = []
    for job in definition.jobs_for(event):
        try:
            with _time_limit(job.timeout):
                outcome = run_job(settings, definition, job.job_name, item_id, nodes=nodes,
                                  timeout_errors=(JobTimedOut,))
        except ServiceJobFailed as exc:
            outcome = JobOutcome(RunStatus.FAILED, str(exc))
        except JobTimedOut:
            outcome = JobOutcome(RunStatus.FAILED, f"timed out after {job.timeout} s (the "
                                                   "job's timeout)")
        outcomes.append((job.job_name, outcome))
    return outcomes
