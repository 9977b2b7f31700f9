"""The whole product as `make run` starts it: dcmtk's storescu sends CTs to our
listener, three patients at once; the scheduler, triggerer and emulator take it from
there; each re-identified RTSTRUCT appears in its CT's origin folder, for its own
patient. The first-start demo series arrives too. On the way, the series-report service
runs no more tasks at once than it is set to."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pydicom
import pytest

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series
from tests.support.dcmtk import dcmtk_tool
from tests.support.pipeline import assert_rtstruct_for
from tests.support.stack import start_stack

pytestmark = pytest.mark.slow
REPORT = ("service_series-report", "series_ready.report")  # include/services/series-report


def _wait_for_rtstructs(datastore: Path, count: int, stack, timeout: float) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(datastore.glob("*/*/RS.*.dcm"))
        if len(found) >= count:
            return found
        time.sleep(2)
    raise AssertionError(f"{len(found)} of {count} RTSTRUCTs after {timeout}s\n"
                         f"{stack.log()[-8000:]}")


def _most_at_once(airflow_db: Path, dag_id: str, task_id: str) -> tuple[int, int]:
    """(task instances that ran, most of them running at the same moment).

    Ran: succeeded or failed. An instance marked upstream_failed or skipped never ran,
    though Airflow stamps it with a start and end (seen when the first service run's
    claim task failed during the stack's start, and the next run took every item)."""
    with sqlite3.connect(airflow_db) as connection:
        spans = [(datetime.fromisoformat(start), datetime.fromisoformat(end))
                 for start, end in connection.execute(
                     "SELECT start_date, end_date FROM task_instance WHERE dag_id = ? AND "
                     "task_id = ? AND state IN ('success', 'failed') AND "
                     "start_date IS NOT NULL AND end_date IS NOT NULL",
                     (dag_id, task_id))]
    moments = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in moments:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return len(spans), most


def test_storescu_to_rtstruct_in_the_origin_folder_through_the_running_stack(tmp_path):
    storescu = dcmtk_tool("storescu")
    stack = start_stack(tmp_path / "var", {"DICOM_OPS_QUIET_SECONDS": "2",
                                           "DICOM_OPS_SERVICES_MAX_ACTIVE_TASKS": "1"})
    patients = [synthetic_patient(40 + n) for n in range(3)]
    series = {patient.patient_id: make_ct_series(
        patient, SeriesGeometry(slices=12, rows=64, columns=64)) for patient in patients}
    try:
        stack.wait_healthy(timeout=240)
        senders = [subprocess.Popen(
            [storescu, "-aet", "CT_SIM", "-aec", "DRAWCLIENT", "127.0.0.1",
             str(stack.listener_port),
             *map(str, write_series(images, tmp_path / "outgoing" / patient_id))],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for patient_id, images in series.items()]
        for sender in senders:
            assert sender.wait(timeout=60) == 0, sender.stderr.read().decode()[-2000:]

        delivered = _wait_for_rtstructs(stack.data_root / "datastore", 4, stack, timeout=420)
        airflow_db = stack.data_root / "airflow" / "airflow.db"
        deadline = time.monotonic() + 120
        while _most_at_once(airflow_db, *REPORT)[0] < 4 and time.monotonic() < deadline:
            time.sleep(2)
    finally:
        stack.stop()

    for patient in patients:
        ours = series[patient.patient_id][0]
        origin = stack.data_root / "datastore" / ours.StudyInstanceUID / ours.SeriesInstanceUID
        mine = [path for path in delivered if path.parent == origin]
        assert len(mine) == 1
        assert_rtstruct_for(pydicom.dcmread(mine[0]), patient, series[patient.patient_id])
    origins = {stack.data_root / "datastore" / images[0].StudyInstanceUID
               / images[0].SeriesInstanceUID for images in series.values()}
    demo = [path for path in delivered if path.parent not in origins]
    assert len(demo) == 1, "the first-start demo series should come back too"
    # the service took all four series (three patients and the demo), one at a time
    assert _most_at_once(airflow_db, *REPORT) == (4, 1)
