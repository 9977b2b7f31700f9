"""The distributed deployment's Celery workers load the DAG files' imports once, while the
worker initialises and before its pool forks, through Airflow's own Celery app and
settings; the scheduler, which builds the same app to send tasks, loads nothing extra.
And a worker takes no task before the Execution API answers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading

from dicom_ops.cluster.deployment import shared_settings
from dicom_ops.config import REPO_ROOT

from tests.support import execution_api as stand_in

late_execution_api, live_execution_api = (stand_in.late_execution_api,
                                          stand_in.live_execution_api)

OPERATORS = "dicom_ops.airflow.operators.deidentify"


def _celery_app_report(what_the_worker_does: str, api_url: str) -> dict:
    # a fresh interpreter, as a worker or scheduler process starts, with the deployment's
    # setting that selects our Celery config
    script = textwrap.dedent(f"""
        import json, sys
        from airflow.providers.celery.executors.celery_executor_utils import app
        before = {OPERATORS!r} in sys.modules
        {what_the_worker_does}
        print(json.dumps({{"before": before, "after": {OPERATORS!r} in sys.modules,
                           "acks_late": app.conf.task_acks_late,
                           "prefetch": app.conf.worker_prefetch_multiplier}}))
    """)
    env = dict(os.environ, AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
               AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=shared_settings()[
                   "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"],
               AIRFLOW__CORE__EXECUTION_API_SERVER_URL=api_url,
               AIRFLOW__CELERY__TASK_ACKS_LATE="True",
               AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER="1")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return {**json.loads(result.stdout.strip().splitlines()[-1]),
            "log": result.stdout + result.stderr}


def test_a_worker_loads_the_dag_files_imports_before_its_pool_forks(live_execution_api):
    # what Celery's worker does while it initialises, in its main process, before the pool
    report = _celery_app_report("app.loader.import_default_modules()", live_execution_api.url)
    assert report["before"] is False and report["after"] is True
    assert "Preloaded" in report["log"] and "before the worker forks its pool" in report["log"]
    # and the app is still Airflow's, with the deployment's AIRFLOW__CELERY__* settings
    assert report["acks_late"] is True and report["prefetch"] == 1
    # and it asked the Execution API whether tasks can start
    assert live_execution_api.health_checks == 1


def test_the_scheduler_building_the_same_app_loads_nothing_extra(late_execution_api):
    late_execution_api.listen()
    report = _celery_app_report("pass", late_execution_api.url)
    assert report["before"] is False and report["after"] is False
    assert "Preloaded" not in report["log"]
    assert late_execution_api.health_checks == 0  # and waits for nothing


def test_a_preload_that_fails_is_logged_and_the_worker_starts_all_the_same(monkeypatch,
                                                                          live_execution_api):
    # Celery re-raises a failing import_modules handler, which would stop the worker
    from dicom_ops.airflow.executors import celery_config

    def broken(before: str) -> None:
        raise PermissionError("dags folder unreadable")

    monkeypatch.setattr(celery_config, "preload_dag_folder", broken)
    # a handler of our own: Airflow's logging set-up (imported above) bypasses caplog
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append
    logger = logging.getLogger(celery_config.__name__)
    logger.addHandler(handler)
    try:
        celery_config.prepare_for_tasks(sender=None)  # returns: the worker goes on
    finally:
        logger.removeHandler(handler)
    [record] = records
    assert record.getMessage().startswith("Preloading the DAG files' imports failed")
    assert "dags folder unreadable" in str(record.exc_info[1])
    assert live_execution_api.health_checks == 1  # the wait for the API still happens


def test_a_worker_takes_no_task_before_the_execution_api_answers(monkeypatch,
                                                                  late_execution_api):
    # given the API server still starting, as on a first `make cluster`
    from dicom_ops.airflow.executors import celery_config

    monkeypatch.setattr(celery_config, "preload_dag_folder", lambda before: None)
    initialising = threading.Thread(target=celery_config.prepare_for_tasks,
                                    kwargs={"sender": None}, daemon=True)
    initialising.start()
    # then the worker's initialisation (before its pool exists) does not finish
    initialising.join(timeout=1.0)
    assert initialising.is_alive()
    # until the API server answers
    late_execution_api.listen()
    initialising.join(timeout=30)
    assert not initialising.is_alive() and late_execution_api.health_checks >= 1
