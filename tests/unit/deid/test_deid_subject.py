"""The subject map is encrypted: readable with this installation's secret only."""

import pytest
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.subject import SubjectMapError, decrypt_subject, encrypt_subject

KEYS = DeidKeys.from_secret("subject-test-secret-0123456789")
SUBJECT = {"PatientName": "NAKAMURA^AMARA^QUINTUS", "PatientID": "PID00012X",
           "PatientBirthDate": "19520101", "OtherPatientNames": "Zoë^Ü"}


def test_the_demographics_come_back_exactly():
    assert decrypt_subject(encrypt_subject(SUBJECT, KEYS), KEYS) == SUBJECT


def test_the_token_shows_nothing_of_the_patient():
    token = encrypt_subject(SUBJECT, KEYS)
    for value in ("NAKAMURA", "PID00012X", "19520101"):
        assert value.encode() not in token


def test_another_secret_cannot_read_it():
    token = encrypt_subject(SUBJECT, KEYS)
    with pytest.raises(SubjectMapError, match="DICOM_OPS_SECRET_KEY changed"):
        decrypt_subject(token, DeidKeys.from_secret("another-secret-0123456789abc"))
