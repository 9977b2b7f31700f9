"""The distributed deployment, described once: which roles run, with which command,
and which Airflow settings every process of it shares.

``dicom-ops cluster`` starts these commands natively; ``docker-compose.yaml`` runs the
same ones in containers, and ``tests/unit/cluster/test_compose_matches.py`` fails when
the two disagree. Values that name a place (database, broker and API server
addresses) differ between the two and are only required to be present
(``PLACE_SETTINGS``); every other value must be equal (``shared_settings``).
"""

from __future__ import annotations

# Airflow components, each its own process (container); the workers run through
# `dicom-ops worker`, which checks the data root before it becomes `airflow celery worker`.
ROLE_COMMANDS: dict[str, list[str]] = {
    "api-server": ["airflow", "api-server"],
    "scheduler": ["airflow", "scheduler"],
    "dag-processor": ["airflow", "dag-processor"],
    "triggerer": ["airflow", "triggerer"],
    "worker": ["dicom-ops", "worker"],
    "listener": ["dicom-ops", "listener"],
}
EMULATOR_COMMAND = ["dicom-ops", "emulator"]
FLOWER_COMMAND = ["airflow", "celery", "flower"]

# Recovery from a crashed worker, scheduler or triggerer (see the README, "Production
# deployment"). A task whose worker died stops heartbeating; the scheduler looks for such
# tasks every DETECTION seconds and, TIMEOUT seconds after the last heartbeat, hands the
# task to its retry (the DAGs' retries), which any live worker takes. Heartbeats come every
# HEARTBEAT seconds, so a busy worker misses several before it is given up on. A scheduler
# that died is replaced by the next one, which adopts its queued and running tasks once it
# has been silent for HEALTH_THRESHOLD seconds (checked every ORPHAN_CHECK seconds); a
# dead triggerer's triggers move to a live one after the same threshold.
TASK_HEARTBEAT_SECONDS = 3
TASK_HEARTBEAT_TIMEOUT_SECONDS = 15
TASK_HEARTBEAT_DETECTION_SECONDS = 5
SCHEDULER_HEALTH_THRESHOLD_SECONDS = 15
ORPHAN_CHECK_SECONDS = 10
TRIGGERER_HEALTH_THRESHOLD_SECONDS = 15
# A task a worker had taken from Redis but not started when it died stays "queued": its
# message is unacknowledged until the visibility timeout (hours, see below). The scheduler
# sends a task queued longer than QUEUED_TIMEOUT (checked every QUEUED_CHECK seconds)
# again, up to STUCK_RETRIES times. That is only safe because nothing waits in Redis for
# long: parallelism is the workers' slots (``place_settings``), so a queued task is one a
# worker is about to start.
QUEUED_TIMEOUT_SECONDS = 45
QUEUED_CHECK_SECONDS = 10
STUCK_RETRIES = 5
# Celery: a message is acknowledged only when its task is over (acks_late), and each
# worker process reserves one message at a time, so a worker's death leaves no queued
# task stranded in its memory. Redis redelivers an unacknowledged message after the
# visibility timeout; it must be longer than the longest task (Airflow's default, 24 h,
# is kept): the heartbeat timeout above, not the redelivery, is what re-runs a task.
WORKER_CONCURRENCY = 4
CELERY_CONFIG = "dicom_ops.airflow.executors.celery_config.CELERY_CONFIG"


def shared_settings() -> dict[str, str]:
    """Airflow settings every process of the deployment gets, natively and in compose."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": str(TASK_HEARTBEAT_SECONDS),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT_SECONDS),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL":
            str(TASK_HEARTBEAT_DETECTION_SECONDS),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD":
            str(SCHEDULER_HEALTH_THRESHOLD_SECONDS),
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": str(ORPHAN_CHECK_SECONDS),
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD":
            str(TRIGGERER_HEALTH_THRESHOLD_SECONDS),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(QUEUED_TIMEOUT_SECONDS),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": str(QUEUED_CHECK_SECONDS),
        "AIRFLOW__SCHEDULER__NUM_STUCK_IN_QUEUED_RETRIES": str(STUCK_RETRIES),
        "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        # Airflow's Celery settings, and the workers' tasks start with the DAG files'
        # imports already loaded (``dicom_ops.airflow.executors.celery_config``)
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": CELERY_CONFIG,
    }


# Settings that depend on the place: addresses, and how many worker slots it runs.
PLACE_SETTINGS = (
    "AIRFLOW__CORE__PARALLELISM",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "DICOM_OPS_DB_URL",
    "DICOM_OPS_DATA_ROOT",
)


def place_settings(*, postgres: str, redis: str, api_server: str, data_root: str,
                   workers: int, password: str | None = None) -> dict[str, str]:
    """``PLACE_SETTINGS`` for PostgreSQL at ``postgres`` (host:port; databases ``airflow``
    and ``dicom_ops``), Redis at ``redis`` (host:port), the API server at ``api_server``
    (host:port) and ``workers`` workers of WORKER_CONCURRENCY slots each."""
    def database(user: str, name: str, driver: str = "postgresql+psycopg2") -> str:
        secret = f":{password}" if password else ""
        return f"{driver}://{user}{secret}@{postgres}/{name}"

    return {
        "AIRFLOW__CORE__PARALLELISM": str(workers * WORKER_CONCURRENCY),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database("airflow", "airflow"),
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{redis}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": database("airflow", "airflow", "db+postgresql"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{api_server}/execution/",
        "DICOM_OPS_DB_URL": database("dicom_ops", "dicom_ops"),
        "DICOM_OPS_DATA_ROOT": data_root,
    }


def worker_hostname(number: int) -> str:
    """Celery's name of worker ``number`` (``%h``: the machine's host name)."""
    return f"worker-{number}@%h"
