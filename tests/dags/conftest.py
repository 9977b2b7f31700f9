"""Running the real DAGs with `dag.test()`: a migrated Airflow metadata DB for the test
session, connections from the environment, and settings re-read for each test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.config import get_settings
from dicom_ops.db.session import dispose_engines

from tests.conftest import settings_env


@pytest.fixture(scope="session")
def airflow_db() -> None:
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    result = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True,
                            env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture
def dag_settings_env(airflow_db, settings, monkeypatch):
    """The test's DICOM_OPS_* settings as a DAG run sees them (re-read for each test)."""
    for key, value in settings_env(settings).items():
        if key.startswith("DICOM_OPS_"):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    task_settings.cache_clear()
    yield settings
    get_settings.cache_clear()
    task_settings.cache_clear()
    dispose_engines()


@pytest.fixture
def pipeline_env(dag_settings_env, draw_emulator, monkeypatch):
    """Settings plus the draw_default connection pointing at the emulator."""
    monkeypatch.setenv("AIRFLOW_CONN_DRAW_DEFAULT", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": draw_emulator.port,
        "schema": "http", "password": draw_emulator.token,
        "extra": {"refresh_token": draw_emulator.refresh_token, "client_id": "dicom-ops-test"},
    }))
    return dag_settings_env


def load_dag(dag_id: str, *, retry_delay: timedelta | None = None):
    """The DAG as the scheduler would load it. ``retry_delay`` shortens the retries'
    waits (same number of retries) so a `dag.test()` with a transient fault stays quick:
    `dag.test()` waits out a retry's delay like the scheduler does."""
    from airflow.dag_processing.dagbag import DagBag
    from dicom_ops.config import REPO_ROOT

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    dag = bag.dags[dag_id]
    if retry_delay is not None:
        for task in dag.tasks:
            task.retry_delay = retry_delay
            task.retry_exponential_backoff = False
    return dag


def job_tries(run) -> dict[int, dict[str, tuple[str, int]]]:
    """For each job of a `dag.test()` run: its tasks' final state and number of tries,
    by task id. Mapped tasks are labelled "job <id>" by their map_index_template once
    they ran; a task that never ran (upstream_failed) is its job's by its map index,
    which the tasks of one mapped group share."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = [(ti.task_id, ti.map_index, ti.rendered_map_index or "", str(ti.state),
                ti.try_number)
               for ti in session.query(TaskInstance).filter(
                   TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id,
                   TaskInstance.map_index >= 0)]
    job_at = {map_index: int(label.split()[1]) for _, map_index, label, _, _ in tis
              if label.startswith("job ")}
    tries: dict[int, dict[str, tuple[str, int]]] = {}
    for task_id, map_index, _, state, try_number in tis:
        tries.setdefault(job_at[map_index], {})[task_id] = (state, try_number)
    return tries
