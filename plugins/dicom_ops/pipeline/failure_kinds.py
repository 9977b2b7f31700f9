"""Which errors end a job at once and which are worth another try: the one table.

Every per-job step (``JobStepOperator`` in the Airflow adapters) hands an error it did
not expect to handle to ``classify``. A **permanent** error fails the job at once with
its stage and the reason below, and the task fails without retrying: trying the same
data again gives the same answer, so retries would only hold the job (and the person
waiting for its contours) up. A **transient** error is retried with backoff; after the
last retry the job fails too, so nothing stays ``processing`` in silence. An error the
table does not know is transient: retried, then failed, as before this table existed.

The lookup walks the error's class hierarchy, most specific class first, so a subclass
may be classified differently from its base (``BurnedInAnnotationError`` before
``DeidError``, ``DrawNotFound`` before ``DrawError``).

Outcomes that are not exceptions are decided where they are seen and are permanent
too: a server task ``FAILED``, a task the server no longer knows at a poll, and the
import deadline (``pipeline.import_results.poll_transfers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import requests
from sqlalchemy.exc import OperationalError

from dicom_ops.deid.egress import EgressViolation
from dicom_ops.deid.errors import BurnedInAnnotationError, DeidError
from dicom_ops.delivery.cstore import StoreFailed
from dicom_ops.delivery.dicomweb import DicomWebFailed
from dicom_ops.delivery.origin import DeliveryError
from dicom_ops.delivery.validation import RtstructRejected
from dicom_ops.draw.errors import (
    DrawAuthError,
    DrawBusy,
    DrawChecksumMismatch,
    DrawError,
    DrawNotFound,
    DrawRejected,
    DrawTransientError,
)
from dicom_ops.jobs.errors import DuplicateJob, JobError, RangeError, TransitionRefused
from dicom_ops.pipeline.errors import JobFailed, redact_identifiers


class FailureKind(StrEnum):
    PERMANENT = "permanent"  # fail the job now, with its stage and reason; no retry
    TRANSIENT = "transient"  # retry with backoff; the job fails after the last retry


@dataclass(frozen=True)
class FailureRule:
    kind: FailureKind
    # Shown with the job's stage in the UI, the CLI and notifications. "{error}" stands
    # for the error's own message (those name tags, ranges, endpoints and statuses, never
    # patient values), with every UID-like token redacted.
    reason: str


_P, _T = FailureKind.PERMANENT, FailureKind.TRANSIENT

FAILURE_KINDS: dict[type[BaseException], FailureRule] = {
    # --- the job's own data or request: the same input fails the same way again ----------
    # Domain code that already knows it is permanent says so, with its own stage.
    JobFailed: FailureRule(_P, "{error}"),
    # Two images with one InstanceNumber, a range the series cannot satisfy.
    RangeError: FailureRule(_P, "image range: {error}"),
    # Only at job creation; listed so a step that meets one never retries it.
    DuplicateJob: FailureRule(_P, "{error}"),
    # The job is no longer processing (cancelled, failed by recovery): nothing to retry.
    TransitionRefused: FailureRule(_P, "{error}"),
    JobError: FailureRule(_P, "{error}"),
    BurnedInAnnotationError: FailureRule(
        _P, "burned-in annotation (BurnedInAnnotation = YES); not sent"),
    # Unsupported data: no pixel data, unreadable headers, series of different patients.
    DeidError: FailureRule(_P, "cannot be de-identified: {error}"),
    EgressViolation: FailureRule(_P, "identifier left in outgoing data: {error}"),
    # --- what the DRAW server said about this job ----------------------------------------
    # Any 4xx but 401/404 (bad checksum, unsupported upload): the same request is refused again.
    DrawRejected: FailureRule(_P, "the DRAW server refused the request: {error}"),
    DrawNotFound: FailureRule(_P, "task not found on server"),
    # --- what came back -------------------------------------------------------------------
    RtstructRejected: FailureRule(_P, "RTSTRUCT rejected, kept in quarantine: {error}"),
    # A different file already in the origin folder, the folder gone: a person must look;
    # writing again would meet the same file or the same missing folder.
    DeliveryError: FailureRule(_P, "not delivered: {error}"),
    # --- the way there: network, server load, our own database and disk --------------------
    # The upload step defers to the triggerer on a busy server instead of retrying; any
    # other step meeting a 503 retries.
    DrawBusy: FailureRule(_T, "the DRAW server is busy: {error}"),
    DrawTransientError: FailureRule(_T, "the DRAW server could not be reached: {error}"),
    # A download corrupted on the way; the fetch already tries again within its step.
    DrawChecksumMismatch: FailureRule(_T, "download corrupted: {error}"),
    # Our credentials, not the job's data: once a person fixes the connection, a retry works.
    DrawAuthError: FailureRule(_T, "the DRAW server refused our credentials (check the "
                                   "draw_default connection): {error}"),
    DrawError: FailureRule(_T, "DRAW server error: {error}"),
    requests.ConnectionError: FailureRule(_T, "network error: {error}"),
    requests.Timeout: FailureRule(_T, "network timeout: {error}"),
    # A destination node down or busy; the origin folder already has the RTSTRUCT.
    StoreFailed: FailureRule(_T, "C-STORE to a destination failed: {error}"),
    DicomWebFailed: FailureRule(_T, "STOW-RS to a destination failed: {error}"),
    # "database is locked" on SQLite, a dropped connection on PostgreSQL. Its message
    # quotes the statement's parameters (UIDs, descriptions): only the class is shown.
    OperationalError: FailureRule(_T, "app database unavailable (OperationalError)"),
    # A full disk (ENOSPC) included: cleanup or a person may free space before the retry.
    OSError: FailureRule(_T, "file system error: {error}"),
}


@dataclass(frozen=True)
class Classified:
    kind: FailureKind
    reason: str  # ready to show: redacted of identifiers
    stage: str | None = None  # the stage the error names itself (``JobFailed``), if any

    @property
    def permanent(self) -> bool:
        return self.kind is FailureKind.PERMANENT


UNKNOWN = FailureRule(_T, "{error}")


def rule_for(error_type: type[BaseException]) -> FailureRule:
    """The rule of the most specific class of ``error_type`` in the table, else transient."""
    for cls in error_type.__mro__:
        rule = FAILURE_KINDS.get(cls)
        if rule is not None:
            return rule
    return UNKNOWN


def _error_text(error: BaseException) -> str:
    """The error's own words. An OS error's text names its file, and files live in folders
    that watch-folder writers may name after the patient: only its errno and reason."""
    if isinstance(error, OSError) and error.strerror:
        return f"[Errno {error.errno}] {error.strerror}" if error.errno else error.strerror
    return str(error)


def classify(error: BaseException) -> Classified:
    """Permanent or transient, with the reason to show (no UIDs) and, for ``JobFailed``,
    its own stage."""
    if isinstance(error, JobFailed):
        return Classified(FailureKind.PERMANENT, redact_identifiers(error.reason), error.stage)
    rule = rule_for(type(error))
    if rule is UNKNOWN:
        # Only the errors in the table are known to word themselves without patient values;
        # any other may quote one (a name in a path, a value in a parse error): its text is
        # left to the DEBUG log, where PHI is allowed.
        return Classified(rule.kind, f"unexpected {type(error).__name__} (its text is in the "
                                     "task log at DEBUG)")
    message = redact_identifiers(_error_text(error)) or type(error).__name__
    return Classified(rule.kind, rule.reason.replace("{error}", message))
