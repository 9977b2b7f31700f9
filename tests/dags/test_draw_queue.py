"""draw_queue: imports cleanly, is wired as documented, and runs end to end under Airflow."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.config import REPO_ROOT, get_settings
from dicom_ops.db.models import Series
from dicom_ops.db.session import session_scope
from sqlalchemy import select

from tests.dags.conftest import load_dag
from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series

AIRFLOW = str(Path(sys.executable).parent / "airflow")


@pytest.fixture(scope="module")
def draw_queue():
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "draw_queue.py"))
    assert bag.import_errors == {}
    return bag.dags["draw_queue"]


def test_draw_queue_is_triggered_by_hand_with_number_and_subfolder(draw_queue):
    assert draw_queue.schedule is None
    assert draw_queue.params["number"] == 50
    assert draw_queue.params["subfolder"] == ""
    assert draw_queue.max_active_runs == 1


def test_draw_queue_announces_ready_series_on_the_watched_asset(draw_queue):
    [task] = draw_queue.tasks
    [outlet] = task.outlets
    assert (outlet.name, outlet.uri) == ("series_ready", "x-dicom-ops://series/ready")
    [watcher] = outlet.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "dicom_ops.airflow.triggers.series_ready.SeriesReadyTrigger"


def _backlog(folder: Path, count: int) -> None:
    for number in range(count):
        drop = folder / f"export_{number}"
        write_series(make_ct_series(synthetic_patient(number), SeriesGeometry(slices=2)), drop)
        old = time.time() - 600 + number
        for path in [*drop.iterdir(), drop]:
            os.utime(path, (old, old))


def _asset_events(airflow_db: Path) -> int:
    with sqlite3.connect(airflow_db) as connection:
        return connection.execute(
            "SELECT count(*) FROM asset_event JOIN asset ON asset.id = asset_event.asset_id "
            "WHERE asset.name = 'series_ready'").fetchone()[0]


@pytest.mark.slow
def test_a_draw_queue_run_registers_a_batch_and_emits_series_ready(cli_env, settings, tmp_path):
    queue_folder = tmp_path / "backlog"
    _backlog(queue_folder, 3)
    airflow_home = tmp_path / "airflow"
    env = dict(cli_env, DICOM_OPS_QUEUE_FOLDERS=str(queue_folder), DICOM_OPS_QUIET_SECONDS="1",
               AIRFLOW_HOME=str(airflow_home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}",
               AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"))
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)

    def run(conf: dict) -> subprocess.CompletedProcess:
        return subprocess.run([AIRFLOW, "dags", "test", "draw_queue", "-c", json.dumps(conf)],
                              env=env, capture_output=True, text=True, timeout=300)

    first = run({"number": 2})
    second = run({"number": 5})

    assert first.returncode == second.returncode == 0, first.stdout[-3000:] + second.stdout[-3000:]
    with session_scope(settings.db_url) as session:
        series = session.scalars(select(Series)).all()
    assert len(series) == 3
    assert {(s.state, s.source) for s in series} == {("ready", "queue")}
    assert _asset_events(airflow_home / "airflow.db") == 2


def test_a_run_that_makes_no_series_ready_is_skipped_and_announces_nothing(
        dag_settings_env, monkeypatch, tmp_path):
    empty_queue = tmp_path / "empty-queue"
    empty_queue.mkdir()
    monkeypatch.setenv("DICOM_OPS_QUEUE_FOLDERS", str(empty_queue))
    get_settings.cache_clear()
    task_settings.cache_clear()
    airflow_db = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    events_before = _asset_events(airflow_db)

    run = load_dag("draw_queue").test(run_conf={"number": 5})

    [task_instance] = run.get_task_instances()
    assert (task_instance.task_id, task_instance.state) == ("register_queued_folders",
                                                            "skipped")
    assert _asset_events(airflow_db) == events_before
