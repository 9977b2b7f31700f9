"""The distributed deployment survives crashes with nobody stepping in (issue 16, item 4).

`dicom-ops cluster` runs (PostgreSQL, Redis, Airflow's parts, two Celery workers,
listener, emulator). Five patients are sent with dcmtk's storescu; while they are in
flight the Celery worker running a de-identification is killed with SIGKILL, then the
one running an upload, then the scheduler and the triggerer. Every RTSTRUCT still
arrives in its origin folder exactly once, the DRAW server holds exactly one upload per
job, and the killed workers, restarted by the supervisor, take work again.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from dicom_ops.db.models import Job, UploadAttempt
from dicom_ops.db.session import dispose_engines, session_scope
from sqlalchemy import select

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series
from tests.support.cluster import RunningCluster, start_cluster
from tests.support.dcmtk import dcmtk_tool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

PATIENTS = 5
RUNNING_TASK = """
    SELECT dag_id, run_id, task_id, map_index, try_number, pid FROM task_instance
    WHERE state = 'running' AND task_id = %s AND pid IS NOT NULL"""


def _send_patient(cluster: RunningCluster, index: int, folder: Path):
    series = make_ct_series(synthetic_patient(index), SeriesGeometry(slices=30, rows=96,
                                                                     columns=96))
    files = write_series(series, folder / f"patient-{index}")
    subprocess.run([dcmtk_tool("storescu"), "-aet", "CT_SIM", "-aec", "DRAWCLIENT",
                    "127.0.0.1", str(cluster.listener_port), *map(str, files)],
                   check=True, capture_output=True, timeout=120)
    return series[0]


def _crash_worker_running(cluster: RunningCluster, task_id: str, timeout: float):
    """SIGKILL the worker that runs ``task_id`` now; returns (worker, task key, when)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for dag_id, run_id, task, map_index, try_number, pid in cluster.query(RUNNING_TASK,
                                                                              task_id):
            worker = cluster.worker_running(pid)
            if worker is not None:
                cluster.crash(cluster.worker(worker))
                return worker, (dag_id, run_id, task, map_index, try_number), datetime.now(UTC)
        time.sleep(0.2)
    raise AssertionError(f"no {task_id} seen running in {timeout}s\n{cluster.log()[-6000:]}")


def _retry_started(cluster: RunningCluster, key: tuple, timeout: float) -> datetime:
    """When the next try of the killed task instance started (on whichever worker)."""
    dag_id, run_id, task_id, map_index, killed_try = key
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = cluster.query("""SELECT try_number, start_date FROM task_instance
            WHERE dag_id = %s AND run_id = %s AND task_id = %s AND map_index = %s""",
                             dag_id, run_id, task_id, map_index)
        if rows and rows[0][0] > killed_try and rows[0][1] is not None:
            return rows[0][1]
        time.sleep(1)
    raise AssertionError(f"{task_id} of {run_id} was not tried again in {timeout}s")


def _took_work_after_restart(log: str, worker: int) -> bool:
    name = f"worker-{worker}"
    restarted = log.rfind(f"restarting {name} ")
    return restarted >= 0 and re.search(
        rf"^{name}\s+\|.*execute_workload\[\S+\] received", log[restarted:], re.M) is not None


def _wait_for_rtstructs(cluster: RunningCluster, count: int, timeout: float) -> list[Path]:
    deadline = time.monotonic() + timeout
    found: list[Path] = []
    while time.monotonic() < deadline:
        found = sorted((cluster.data_root / "datastore").glob("*/*/RS.*.dcm"))
        if len(found) >= count:
            return found
        time.sleep(2)
    raise AssertionError(f"{len(found)} of {count} RTSTRUCTs after {timeout}s\n"
                         f"{cluster.log()[-8000:]}")


def test_five_patients_survive_killed_workers_scheduler_and_triggerer(tmp_path):
    dcmtk_tool("storescu")
    cluster = start_cluster({"DICOM_OPS_QUIET_SECONDS": "2"})
    try:
        cluster.wait_healthy(timeout=300)
        # given five patients in flight (and the first-start demo series)
        sent = [_send_patient(cluster, 60 + index, tmp_path) for index in range(PATIENTS)]

        # when the worker de-identifying is killed, then the one uploading, then the
        # scheduler and the triggerer
        deid_worker, deid_key, deid_killed = _crash_worker_running(
            cluster, "job.deidentify_and_pack", timeout=240)
        upload_worker, upload_key, upload_killed = _crash_worker_running(
            cluster, "job.upload_to_draw", timeout=240)
        cluster.crash(cluster.program("airflow scheduler"))
        time.sleep(3)
        cluster.crash(cluster.program("airflow triggerer"))

        # then every RTSTRUCT arrives, with nobody stepping in
        delivered = _wait_for_rtstructs(cluster, PATIENTS + 1, timeout=600)
        deid_retry = _retry_started(cluster, deid_key, timeout=60)
        upload_retry = _retry_started(cluster, upload_key, timeout=60)
        killed = {deid_worker, upload_worker}
        extra = 0
        while not all(_took_work_after_restart(cluster.log(), n) for n in killed) and extra < 2:
            extra += 1  # the workers share the queue: give the restarted one a chance
            _send_patient(cluster, 90 + extra, tmp_path)
            delivered = _wait_for_rtstructs(cluster, PATIENTS + 1 + extra, timeout=300)
        log = cluster.log()
        print(f"\nrecovery: de-identification re-run {(deid_retry - deid_killed).total_seconds():.0f} s "
              f"after worker-{deid_worker} was killed; upload re-run "
              f"{(upload_retry - upload_killed).total_seconds():.0f} s after worker-{upload_worker}"
              f" was killed; scheduler and triggerer killed too")
        with session_scope(cluster.app_db_url()) as session:
            jobs = session.scalars(select(Job)).all()
            attempts = session.scalars(select(UploadAttempt)).all()
            statuses = {job.id: str(job.status) for job in jobs}
            accepted = [(a.job_id, a.server_task_id) for a in attempts if a.outcome == "accepted"]
        dispose_engines()
    finally:
        cluster.stop()

    try:
        # exactly one RTSTRUCT in each patient's origin folder, for that patient
        for ct in sent:
            origin = cluster.data_root / "datastore" / ct.StudyInstanceUID / ct.SeriesInstanceUID
            mine = [path for path in delivered if path.parent == origin]
            assert len(mine) == 1, f"{len(mine)} RTSTRUCTs in {origin}"
            assert pydicom.dcmread(mine[0]).PatientID == ct.PatientID
        assert len(delivered) == len(set(path.parent for path in delivered))
        # every job finished; the server got exactly one upload per job, each one known
        assert set(statuses.values()) == {"finished"}, statuses
        server_tasks = {path.parent.name for path in
                        (cluster.data_root / "emulator" / "tasks").glob("*/task.json")}
        assert sorted(job for job, _ in accepted) == sorted(statuses)
        assert server_tasks == {task for _, task in accepted}
        # the killed task instances ran again, and the restarted workers took work again
        assert deid_retry > deid_killed and upload_retry > upload_killed
        for worker in killed:
            assert _took_work_after_restart(log, worker), f"worker-{worker} took no work"
        assert "restarting scheduler" in log and "restarting triggerer" in log
        # every worker start, the restarted ones' too, loaded the DAG files' imports once
        # before forking its pool, and all of them loaded
        for worker in (1, 2):  # the cluster's two workers (wait_healthy)
            starts = 1 + log.count(f"restarting worker-{worker} ")
            preloads = re.findall(rf"^worker-{worker}\s+\|.*Preloaded (\d+) of (\d+) "
                                  "DAG-file imports before the worker forks its pool", log, re.M)
            assert len(preloads) == starts, f"worker-{worker}: {preloads}, {starts} starts"
            assert all(loaded == found != "0" for loaded, found in preloads), preloads
    finally:
        cluster.remove()
