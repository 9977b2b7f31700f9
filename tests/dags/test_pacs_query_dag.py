"""pacs_query under `dag.test()`: wired as documented; with no PACS it skips and says so;
a PACS that is down fails the run; and end to end, a department with only a PACS gets
contours: query -> C-MOVE to the listener -> ready -> draw_export -> draw_import ->
RTSTRUCT delivered to Orthanc over STOW-RS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.config import get_settings
from dicom_ops.db.models import Job, PacsQuery, Transfer
from dicom_ops.db.session import session_scope
from sqlalchemy import func, select

from tests.dags.conftest import load_dag
from tests.integration.pacs.conftest import pacs_series
from tests.support.listener import wait_ready
from tests.support.pacs import PACS_PASSWORD, PACS_USER, pacs_orthanc  # noqa: F401
from tests.support.postgres import free_port


def _configure(monkeypatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    task_settings.cache_clear()


def _task_states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_pacs_query_runs_every_thirty_minutes_echo_then_find_then_retrieve():
    dag = load_dag("pacs_query")
    assert dag.timetable.delta == timedelta(minutes=30)
    assert [t.task_id for t in dag.topological_sort()] == ["echo", "find_and_filter",
                                                           "retrieve"]
    assert dag.max_active_runs == 1
    assert {"modality", "days_back", "date_from", "station_exclude", "max_series"} <= \
        set(dag.params.keys())


def test_without_a_pacs_connection_the_run_skips_every_task(dag_settings_env):
    run = load_dag("pacs_query").test()

    assert run.state == "success"
    assert set(_task_states(run).values()) == {"skipped"}
    with session_scope(dag_settings_env.db_url) as session:
        assert session.scalar(select(func.count()).select_from(PacsQuery)) == 0


def test_a_pacs_that_is_down_fails_the_run_at_the_echo(dag_settings_env, monkeypatch):
    _configure(monkeypatch, DICOM_OPS_PACS_CONN="pacs", AIRFLOW_CONN_PACS=json.dumps(
        {"conn_type": "dicom", "host": "127.0.0.1", "port": free_port(), "schema": "PACS"}))

    run = load_dag("pacs_query").test()

    assert run.state == "failed"
    states = _task_states(run)
    assert states["echo"] == "failed" and states["find_and_filter"] == "upstream_failed"


@pytest.mark.slow
def test_a_department_with_only_a_pacs_gets_contours_back_in_the_pacs(
        pipeline_env, draw_emulator, pacs_orthanc, start_listener, monkeypatch,  # noqa: F811
        tmp_path):
    settings = pipeline_env
    pacs_orthanc.clear()
    today = datetime.now(UTC).strftime("%Y%m%d")
    held = pacs_series(tmp_path, 40, study_date=today, slices=6)
    pacs_orthanc.upload(held.files)
    listener = start_listener()
    pacs_orthanc.declare_listener(settings.ae_title, listener.port)
    _configure(
        monkeypatch, DICOM_OPS_PACS_CONN="pacs", DICOM_OPS_DESTINATIONS="pacs_web",
        DICOM_OPS_LISTENER_PORT=str(listener.port),
        AIRFLOW_CONN_PACS=json.dumps({"conn_type": "dicom", "host": "127.0.0.1",
                                      "port": pacs_orthanc.dicom_port, "schema": "ORTHANC"}),
        AIRFLOW_CONN_PACS_WEB=json.dumps({
            "conn_type": "dicomweb", "host": "127.0.0.1", "port": pacs_orthanc.http_port,
            "schema": "http", "login": PACS_USER, "password": PACS_PASSWORD,
            "extra": {"path": "/dicom-web"}}))

    # the PACS query brings the planning CT in through the listener
    run = load_dag("pacs_query").test()
    assert run.state == "success"
    row = wait_ready(settings.db_url, [held.series_uid])[held.series_uid]
    assert (row.source, row.instance_count) == ("pacs", 6)

    # the pipelines take it from there, as for a pushed series
    assert load_dag("draw_export").test().state == "success"
    with session_scope(settings.db_url) as session:
        transfer = session.scalars(select(Transfer)).one()
        job_id, task_id = transfer.job_id, transfer.server_task_id
    draw_emulator.wait_for_status(task_id)
    assert load_dag("draw_import").test().state == "success"

    # and the RTSTRUCT is in the PACS, under the original patient, sent by STOW-RS
    with session_scope(settings.db_url) as session:
        assert session.get(Job, job_id).status == "finished"
    stored = [pacs_orthanc.get(f"/instances/{i}/simplified-tags")
              for i in pacs_orthanc.get("/instances")]
    [rtstruct] = [s for s in stored if s["Modality"] == "RTSTRUCT"]
    assert rtstruct["PatientID"] == held.datasets[0].PatientID
    assert rtstruct["StudyInstanceUID"] == held.datasets[0].StudyInstanceUID


@pytest.mark.slow
def test_a_dicomweb_pacs_is_queried_and_retrieved_by_the_same_dag(
        dag_settings_env, pacs_orthanc, monkeypatch, tmp_path):  # noqa: F811
    settings = dag_settings_env
    pacs_orthanc.clear()
    held = pacs_series(tmp_path, 41, study_date=datetime.now(UTC).strftime("%Y%m%d"))
    pacs_orthanc.upload(held.files)
    _configure(monkeypatch, DICOM_OPS_PACS_CONN="pacs_web", AIRFLOW_CONN_PACS_WEB=json.dumps({
        "conn_type": "dicomweb", "host": "127.0.0.1", "port": pacs_orthanc.http_port,
        "schema": "http", "login": PACS_USER, "password": PACS_PASSWORD,
        "extra": {"path": "/dicom-web"}}))

    run = load_dag("pacs_query").test()

    assert run.state == "success"
    row = wait_ready(settings.db_url, [held.series_uid])[held.series_uid]
    assert (row.source, row.instance_count) == ("pacs", 4)
    with session_scope(settings.db_url) as session:
        [recorded] = session.scalars(select(PacsQuery)).all()
        assert (recorded.pacs, recorded.status, recorded.received_instances) == (
            "pacs_web", "done", 4)
