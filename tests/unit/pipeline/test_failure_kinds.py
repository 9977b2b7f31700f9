"""The failure table: which errors fail a job at once, which are retried, and what the
user reads (never a UID)."""

from __future__ import annotations

import errno

import pytest
import requests
from dicom_ops.deid.egress import EgressViolation
from dicom_ops.deid.errors import BurnedInAnnotationError, DeidError
from dicom_ops.delivery.origin import DeliveryError
from dicom_ops.delivery.validation import RtstructRejected
from dicom_ops.draw.errors import (
    DrawAuthError,
    DrawBusy,
    DrawChecksumMismatch,
    DrawNotFound,
    DrawRejected,
    DrawTransientError,
)
from dicom_ops.jobs.errors import DuplicateJob, RangeError
from dicom_ops.pipeline.errors import JobFailed
from dicom_ops.pipeline.failure_kinds import FAILURE_KINDS, FailureKind, classify
from sqlalchemy.exc import OperationalError

UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"

PERMANENT = [
    (RangeError("range auto: instance number(s) 4 appear more than once"),
     "image range: range auto: instance number(s) 4 appear more than once"),
    (DuplicateJob(3, "finished"), "duplicate of job 3 (finished)"),
    (BurnedInAnnotationError("image 2 of 6"),
     "burned-in annotation (BurnedInAnnotation = YES); not sent"),
    (DeidError("image 3 of 6 has no pixel data"),
     "cannot be de-identified: image 3 of 6 has no pixel data"),
    (EgressViolation(["image 1 of 6: (0020,4000) ImageComments: patient name part"]),
     "identifier left in outgoing data: PHI egress check failed: image 1 of 6"),
    (DrawRejected("POST /api/upload/ answered 400: bad checksum", status_code=400),
     "the DRAW server refused the request: POST /api/upload/ answered 400"),
    (DrawNotFound("GET /api/upload/x/status/ answered 404", status_code=404),
     "task not found on server"),
    (RtstructRejected(f"RTSTRUCT references a UID that is not in this job's map: {UID}"),
     "RTSTRUCT rejected, kept in quarantine: RTSTRUCT references a UID that is not in this "
     "job's map: <uid>"),
    (DeliveryError("RS.x.dcm already exists with different content; not overwritten"),
     "not delivered: RS.x.dcm already exists with different content"),
]

TRANSIENT = [
    (DrawTransientError("POST /api/upload/ answered 502"), "the DRAW server could not be"),
    (DrawBusy("GET /api/health/ answered 503"), "the DRAW server is busy"),
    (DrawChecksumMismatch("download did not match"), "download corrupted"),
    (DrawAuthError("answered 401 even after a token refresh"), "check the draw_default"),
    (requests.ConnectionError("connection refused"), "network error"),
    (requests.ConnectTimeout("connect timed out"), "network error"),
    (requests.ReadTimeout("read timed out"), "network timeout"),
    (OperationalError("UPDATE job SET ...", {"uid": UID}, Exception("database is locked")),
     "app database unavailable (OperationalError)"),
    (OSError(errno.ENOSPC, "No space left on device"), "file system error: [Errno 28] No space"),
    (KeyError("something nobody expected"), "unexpected KeyError (its text is in the task log"),
]


@pytest.mark.parametrize(("error", "reason"), PERMANENT,
                         ids=[type(e).__name__ for e, _ in PERMANENT])
def test_errors_of_the_job_s_own_data_or_request_fail_it_at_once(error, reason):
    failure = classify(error)
    assert failure.kind is FailureKind.PERMANENT and failure.permanent
    assert failure.reason.startswith(reason)


@pytest.mark.parametrize(("error", "reason"), TRANSIENT,
                         ids=[type(e).__name__ for e, _ in TRANSIENT])
def test_errors_of_the_way_there_are_retried(error, reason):
    failure = classify(error)
    assert failure.kind is FailureKind.TRANSIENT and not failure.permanent
    assert reason in failure.reason


def test_a_job_failed_keeps_its_own_stage_and_reason():
    failure = classify(JobFailed("egress check", f"identifier left near {UID}"))
    assert failure.permanent
    assert (failure.stage, failure.reason) == ("egress check", "identifier left near <uid>")


def test_the_most_specific_class_decides():
    # DrawNotFound and DrawRejected are DrawErrors (transient); BurnedInAnnotationError is
    # a DeidError with its own reason; a ConnectTimeout is also a requests.Timeout.
    assert classify(DrawNotFound("404")).permanent
    assert classify(BurnedInAnnotationError("x")).reason.startswith("burned-in")
    assert classify(requests.ConnectTimeout("x")).reason.startswith("network error")


def test_no_reason_shows_a_uid_or_the_database_s_statement():
    for error, _ in PERMANENT + TRANSIENT:
        assert UID not in classify(error).reason
    locked = OperationalError(f"SELECT * FROM series WHERE uid = '{UID}'", {}, Exception("x"))
    assert "SELECT" not in classify(locked).reason


def test_every_entry_has_a_kind_and_a_reason():
    for error_type, rule in FAILURE_KINDS.items():
        assert isinstance(rule.kind, FailureKind), error_type
        assert rule.reason.strip(), error_type


def test_an_unexpected_error_shows_its_class_but_not_its_text():
    error = ValueError("cannot parse /data/watch/Smith_John_1970/scan: PN 'Smith^John'")

    reason = classify(error).reason

    assert "Smith" not in reason
    assert reason.startswith("unexpected ValueError")


def test_an_os_error_does_not_show_the_file_it_names():
    error = FileNotFoundError(errno.ENOENT, "No such file or directory",
                              "/data/watch/Smith_John_1970/scan")

    failure = classify(error)

    assert failure.reason == "file system error: [Errno 2] No such file or directory"
    assert "Smith" not in failure.reason
