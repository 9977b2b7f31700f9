"""Running the real DAGs with `dag.test()`: a migrated Airflow metadata DB for the test
session, connections from the environment, and settings re-read for each test."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


def load_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag
    from dicom_ops.config import REPO_ROOT

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]
