"""draw_cleanup: wired as documented, and `dag.test()` with its params does what they say."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.config import get_settings
from dicom_ops.db.models import Job, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.pipeline.workspace import job_work_dir

from tests.dags.conftest import load_dag
from tests.support.jobs import job_in_status


@pytest.fixture(scope="module")
def draw_cleanup():
    return load_dag("draw_cleanup")


@pytest.fixture
def cleanup_env(dag_settings_env, monkeypatch):
    """Settings as a DAG run sees them; no watermark (the test disk is not ours)."""
    monkeypatch.setenv("DICOM_OPS_CLEANUP_WATERMARK", "0")
    get_settings.cache_clear()
    task_settings.cache_clear()
    return dag_settings_env


def test_draw_cleanup_runs_daily_one_run_at_a_time(draw_cleanup):
    assert draw_cleanup.timetable.delta == timedelta(hours=24)
    assert draw_cleanup.max_active_runs == 1
    assert [t.task_id for t in draw_cleanup.tasks] == ["clean_up"]


def test_draw_cleanup_params_default_to_a_real_run_with_the_configured_retentions(draw_cleanup):
    assert draw_cleanup.params["dry_run"] is False
    assert draw_cleanup.params["older_than_hours"] is None


def _ended_job_with_work_folder(settings) -> Path:
    with session_scope(settings.db_url) as session:
        job_id = job_in_status(session, "finished")
        session.add(Transfer(job_id=job_id, status="confirmed"))
        session.get(Job, job_id).finished_at = utcnow() - timedelta(hours=3)
    folder = job_work_dir(settings, job_id)
    folder.mkdir(parents=True)
    (folder / "upload.zip").write_bytes(b"\0" * 2048)
    return folder


def _summaries(airflow_home: Path) -> list[dict]:
    with sqlite3.connect(airflow_home / "airflow.db") as connection:
        rows = connection.execute(
            "SELECT value FROM xcom WHERE dag_id = 'draw_cleanup' AND task_id = 'clean_up' "
            "AND key = 'return_value' ORDER BY timestamp").fetchall()
    return [json.loads(value) if isinstance(value, str) else value for (value,) in rows]


def _run(**conf):
    """One run of a freshly parsed DAG, as the scheduler starts each run."""
    return load_dag("draw_cleanup").test(run_conf=conf or None)


def test_a_dry_run_keeps_everything_and_older_than_hours_then_removes_it(cleanup_env):
    folder = _ended_job_with_work_folder(cleanup_env)
    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    before = len(_summaries(airflow_home))

    dry = _run(dry_run=True, older_than_hours=1)
    assert dry.state == "success" and folder.exists()
    configured = _run()
    assert configured.state == "success" and folder.exists()  # 3 h < 7 days
    overridden = _run(older_than_hours=1)

    assert overridden.state == "success" and not folder.exists()
    dry_summary, configured_summary, real_summary = _summaries(airflow_home)[before:]
    assert (dry_summary["dry_run"], dry_summary["areas"]["work"]["removed"]) == (True, 1)
    assert configured_summary["areas"]["work"] == {"removed": 0, "bytes_freed": 0, "early": 0,
                                                   "kept": 1, "skipped": 0}
    assert (real_summary["removed"], real_summary["bytes_freed"]) == (1, 2048)
