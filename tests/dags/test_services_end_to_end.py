"""The shipped services end to end: a CT series sent by dcmtk's storescu to the real
listener, then the generated service DAGs with `dag.test()`: series-report writes its
report; archive-forward (enabled) sends the CT and its delivered RTSTRUCT to an archive
(dcmtk's storescp on loopback) after the export and import pipelines have run."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pydicom
import pytest
from dicom_ops.config import get_settings
from dicom_ops.db.models import ServiceRun, Transfer
from dicom_ops.db.session import session_scope
from sqlalchemy import select

from tests.dags.conftest import load_dag
from tests.factories import make_ct_series, synthetic_patient, write_series
from tests.support.listener import storescu, wait_ready
from tests.support.pipeline import SMALL
from tests.support.postgres import free_port
from tests.support.services import copy_example, load_service_dags, start_storescp

pytestmark = pytest.mark.slow


def send_ct(start_listener, tmp_path, patient_index: int):
    datasets = make_ct_series(synthetic_patient(patient_index), SMALL)
    files_dir = tmp_path / f"to-send-{patient_index}"
    write_series(datasets, files_dir)
    listener = start_listener()
    storescu(listener.port, sorted(files_dir.iterdir()))
    return listener, datasets


def test_series_report_runs_on_a_series_received_by_the_listener(
        dag_settings_env, start_listener, tmp_path, monkeypatch, cli_env):
    settings = dag_settings_env
    services_dir = tmp_path / "services"
    copy_example(services_dir, "series-report")
    monkeypatch.setenv("DICOM_OPS_SERVICES_DIR", str(services_dir))
    listener, datasets = send_ct(start_listener, tmp_path, patient_index=11)
    wait_ready(settings.db_url, [datasets[0].SeriesInstanceUID], timeout=60)
    listener.stop()

    run = load_service_dags()["service_series-report"].test()

    assert run.state == "success"
    (report_file,) = (settings.results_dir / "services" / "series-report").glob(
        "item-*/report/report.json")
    report = json.loads(report_file.read_text())
    assert report["slices"] == SMALL.slices
    assert report["pixel_spacing_mm"] == [SMALL.pixel_spacing] * 2
    assert report["slice_spacing_mm"] == abs(SMALL.z_step)
    # The phantom's body is an ellipse of semi-axes 0.42 and 0.32 of the field of view,
    # with lungs (-800 HU) inside that are not body: less than the ellipse, not much less.
    fov = SMALL.columns * SMALL.pixel_spacing
    ellipse_ml = math.pi * 0.42 * fov * 0.32 * fov * abs(SMALL.z_step) * SMALL.slices / 1000
    assert 0.6 * ellipse_ml < report["body_volume_ml"] < 1.05 * ellipse_ml
    env = {**cli_env, "DICOM_OPS_SERVICES_DIR": str(services_dir)}
    shown = subprocess.run([sys.executable, "-m", "dicom_ops.cli", "services", "runs"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert "series-report/report" in shown and "succeeded" in shown
    assert f'"body_volume_ml": {report["body_volume_ml"]}' in shown
    assert datasets[0].PatientID not in shown and str(datasets[0].PatientName) not in shown


def test_archive_forward_sends_the_ct_and_its_delivered_rtstruct_to_the_archive(
        pipeline_env, draw_emulator, start_listener, tmp_path, monkeypatch):
    settings = pipeline_env
    listener, datasets = send_ct(start_listener, tmp_path, patient_index=12)
    wait_ready(settings.db_url, [datasets[0].SeriesInstanceUID], timeout=60)
    listener.stop()
    assert load_dag("draw_export").test().state == "success"
    with session_scope(settings.db_url) as session:
        task_id = session.scalars(select(Transfer.server_task_id)).one()
    draw_emulator.wait_for_status(task_id)
    assert load_dag("draw_import").test().state == "success"

    services_dir = tmp_path / "services"
    copy_example(services_dir, "archive-forward", enable=True)
    monkeypatch.setenv("DICOM_OPS_SERVICES_DIR", str(services_dir))
    port = free_port()
    monkeypatch.setenv("AIRFLOW_CONN_ARCHIVE", f"dicom://127.0.0.1:{port}/ARCHIVE")
    archive = start_storescp(tmp_path / "archive", port)
    try:
        run = load_service_dags()["service_archive-forward"].test()
    finally:
        archive.terminate()
        archive.wait(timeout=30)

    assert run.state == "success"
    received = [pydicom.dcmread(path, stop_before_pixels=True)
                for path in (tmp_path / "archive").iterdir()]
    assert sorted(ds.Modality for ds in received) == ["CT"] * len(datasets) + ["RTSTRUCT"]
    rtstruct = next(ds for ds in received if ds.Modality == "RTSTRUCT")
    assert rtstruct.PatientID == datasets[0].PatientID  # identified data, inside the hospital
    with session_scope(get_settings().db_url) as session:
        (record,) = session.scalars(select(ServiceRun)).all()
        assert record.status == "succeeded"
        assert json.loads(record.result) == {"destination": "archive",
                                             "stored": len(datasets) + 1, "attempts": 1}
