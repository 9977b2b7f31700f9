"""A job of several series of one patient is prepared as one upload: each series
de-identified into its own folder, all of them checked together, one zip."""

from __future__ import annotations

import zipfile

from dicom_ops.db.models import UidMap
from dicom_ops.db.session import session_scope
from dicom_ops.jobs import SeriesChoice, create_job
from dicom_ops.jobs.claims import claim_next_job
from dicom_ops.pipeline.export import prepare_upload
from sqlalchemy import select

from tests.factories import synthetic_patient
from tests.support.pipeline import ready_series_on_disk


def test_a_two_series_job_becomes_one_zip_with_both_series_and_one_uid_map(settings):
    # given one patient's two series in one job
    patient = synthetic_patient(9)
    first = ready_series_on_disk(settings, patient_index=9, series_number=1)
    second = ready_series_on_disk(settings, patient_index=9, series_number=2)
    with session_scope(settings.db_url) as session:
        job_id = create_job(session, template="Thorax OARs", series=[
            SeriesChoice(first.series_id), SeriesChoice(second.series_id)]).id
    assert claim_next_job(settings.db_url, "test") == job_id

    # when the job is prepared
    prepared = prepare_upload(settings, job_id)

    # then the zip holds both series, each in its own folder, and no PHI
    with zipfile.ZipFile(prepared.zip_path) as zf:
        names = [n for n in zf.namelist() if n.endswith(".dcm")]
        blob = b"".join(zf.read(name) for name in zf.namelist())
    assert prepared.image_count == len(first.datasets) + len(second.datasets) == len(names)
    assert {name.split("/")[0] for name in names} == {"00", "01"}
    for phi in patient.phi_strings():
        assert phi.encode() not in blob, phi
    with session_scope(settings.db_url) as session:
        originals = set(session.scalars(select(UidMap.original_uid)
                                        .where(UidMap.job_id == job_id)))
    assert {first.datasets[0].SeriesInstanceUID, second.datasets[0].SeriesInstanceUID} <= originals
