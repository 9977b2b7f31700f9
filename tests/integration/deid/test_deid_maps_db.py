"""The UID map and the encrypted subject map in the app DB, on SQLite and PostgreSQL: they
bring the original back, and the database never holds the patient's name or ID in clear."""

from pathlib import Path

from dicom_ops.config import REPO_ROOT
from dicom_ops.db.models import Job
from dicom_ops.db.session import create_engine_for, session_scope
from dicom_ops.deid.engine import deidentify_series
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.recipe import load_recipe
from dicom_ops.deid.store import load_subject, load_uid_map, store_deid_maps
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series

RECIPE = load_recipe(REPO_ROOT / "include" / "deid" / "deid.dicom")
KEYS = DeidKeys.from_secret("maps-test-secret-0123456789")
PATIENT = synthetic_patient(9)


def deidentified(tmp_path: Path):
    series = make_ct_series(PATIENT, SeriesGeometry(slices=3, rows=8, columns=8))
    return deidentify_series(write_series(series, tmp_path / "in"), tmp_path / "out", RECIPE,
                             KEYS)


def new_job(db_url: str) -> int:
    with session_scope(db_url) as session:
        job = Job(template="Thorax OARs")
        session.add(job)
        session.flush()
        return job.id


def stored_bytes(db_url: str) -> bytes:
    """Everything the database holds for the two maps, as it lies on disk or in rows."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        create_engine_for(db_url).dispose()
        files = [Path(url.database), Path(url.database + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    with create_engine_for(db_url).connect() as connection:
        rows = connection.execute(text(
            "SELECT uid_map::text FROM uid_map UNION ALL SELECT subject_map::text FROM subject_map"))
        return "\n".join(row[0] for row in rows).encode()


def test_the_maps_bring_the_original_back_and_hold_no_name_or_id_in_clear(tmp_path, db_url):
    result = deidentified(tmp_path)
    job_id = new_job(db_url)
    with session_scope(db_url) as session:
        store_deid_maps(session, job_id, result, KEYS)
    with session_scope(db_url) as session:
        assert load_uid_map(session, job_id) == result.uid_map
        pseudonym, offset, subject = load_subject(session, job_id, KEYS)
    assert (pseudonym, offset) == (result.pseudonym, result.date_offset_days)
    assert subject["PatientName"] == PATIENT.dicom_name
    assert subject["PatientID"] == PATIENT.patient_id
    on_disk = stored_bytes(db_url)
    assert PATIENT.study_uid.encode() in on_disk  # the UID map itself is there
    for secret in (PATIENT.family_name, PATIENT.given_name, PATIENT.patient_id,
                   PATIENT.birth_date, PATIENT.accession):
        assert secret.encode() not in on_disk, secret


def test_storing_again_for_a_retried_job_replaces_the_maps(tmp_path, db_url):
    result = deidentified(tmp_path)
    job_id = new_job(db_url)
    for _ in range(2):
        with session_scope(db_url) as session:
            store_deid_maps(session, job_id, result, KEYS)
    other_job = new_job(db_url)
    with session_scope(db_url) as session:
        assert load_uid_map(session, job_id) == result.uid_map
        assert load_subject(session, job_id, KEYS)[0] == result.pseudonym
        assert load_subject(session, other_job, KEYS) is None
