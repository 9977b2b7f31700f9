"""What an unexpected failure shows in the Airflow UI: never an original UID."""

import pytest
from dicom_ops.airflow.operators.jobs import redacted_errors
from dicom_ops.pipeline.errors import JobFailed, StepError, redact_identifiers

STUDY = "1.2.826.0.1.3680043.8.498.12345678901234567890"


def test_a_datastore_path_in_an_error_loses_its_uids():
    text = f"[Errno 2] No such file: '/var/datastore/{STUDY}/{STUDY}.4/CT.{STUDY}.7.dcm'"
    redacted = redact_identifiers(text)
    assert STUDY not in redacted
    assert redacted == ("[Errno 2] No such file: "
                        "'/var/datastore/<uid>/<uid>/CT.<uid>.dcm'")


def test_an_unexpected_error_is_re_raised_without_uids_or_chained_traceback():
    with pytest.raises(StepError) as raised:
        with redacted_errors("job 7 at prepare"):
            raise FileNotFoundError(f"/var/datastore/{STUDY}/x.dcm")
    assert str(raised.value) == ("job 7 at prepare: FileNotFoundError: "
                                 "/var/datastore/<uid>/x.dcm")
    assert raised.value.__suppress_context__


def test_permanent_job_failures_pass_through_unchanged():
    with pytest.raises(JobFailed, match="egress check: identifier left"):
        with redacted_errors("job 7 at prepare"):
            raise JobFailed("egress check", "identifier left in outgoing data")
