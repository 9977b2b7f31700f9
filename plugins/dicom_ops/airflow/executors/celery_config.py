"""Celery settings of the distributed deployment: Airflow's defaults, plus the DAG files'
imports loaded once in each worker before its pool forks.

A Celery worker runs a task in a process forked (by Airflow's task supervisor) from one
of its pool processes, which Celery forks from the worker's main process at start. The
task then loads its DAG file, and through it pydicom, numpy, deid, pynetdicom and
SQLAlchemy: about 1 s of every task's start, as on the embedded stack before its
``PreloadingLocalExecutor``. Celery sends ``import_modules`` in the main process while
the worker initialises, before the pool exists (Airflow's provider uses the same signal
to preload its own modules); loading the DAG files' imports there means every pool
process, and every task forked from one, starts with them loaded.

The same rules as the LocalExecutor's preload (``preloading``): import statements only,
no setting read, nothing opened; a failing import is logged and skipped. Selected by
``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS`` (``dicom_ops.cluster.deployment``). The
scheduler imports this module too, to build the Celery app it sends tasks with; the
signal is never sent there, so the scheduler loads nothing extra.

The same handler then holds the worker until the Execution API answers
(``execution_api``), as the embedded stack's executor does before it forks.
"""

from __future__ import annotations

import logging

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules

from dicom_ops.airflow.executors.execution_api import wait_for_execution_api
from dicom_ops.airflow.executors.preloading import preload_dag_folder

log = logging.getLogger(__name__)

# Airflow's own Celery settings, unchanged: the deployment sets them through AIRFLOW__CELERY__*.
CELERY_CONFIG = DEFAULT_CELERY_CONFIG


@import_modules.connect
def prepare_for_tasks(**_signal) -> None:
    # Celery re-raises what a handler of this signal raises and the worker does not start:
    # a preload that fails must cost the tasks their head start, never the worker.
    try:
        preload_dag_folder("the worker forks its pool")
    except Exception:  # noqa: BLE001
        log.exception("Preloading the DAG files' imports failed; tasks will import them")
    # and its pool takes no task before the API server can start one (``execution_api``)
    wait_for_execution_api()
