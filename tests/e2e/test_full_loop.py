"""The whole product as `make run` starts it: dcmtk's storescu sends a CT to our
listener; the scheduler, triggerer and emulator take it from there; the re-identified
RTSTRUCT appears in the CT's origin folder. The first-start demo series arrives too."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from dicom_ops.devtools.rtstruct_builder import referenced_uids

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series
from tests.support.dcmtk import dcmtk_tool
from tests.support.stack import start_stack

pytestmark = pytest.mark.slow


def _wait_for_rtstructs(datastore: Path, count: int, stack, timeout: float) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(datastore.glob("*/*/RS.*.dcm"))
        if len(found) >= count:
            return found
        time.sleep(2)
    raise AssertionError(f"{len(found)} of {count} RTSTRUCTs after {timeout}s\n"
                         f"{stack.log()[-8000:]}")


def test_storescu_to_rtstruct_in_the_origin_folder_through_the_running_stack(tmp_path):
    storescu = dcmtk_tool("storescu")
    stack = start_stack(tmp_path / "var", {"DICOM_OPS_QUIET_SECONDS": "2"})
    try:
        stack.wait_healthy(timeout=240)
        patient = synthetic_patient(40)
        series = make_ct_series(patient, SeriesGeometry(slices=12, rows=64, columns=64))
        files = write_series(series, tmp_path / "outgoing")
        subprocess.run([storescu, "-aet", "CT_SIM", "-aec", "DRAWCLIENT", "127.0.0.1",
                        str(stack.listener_port), *map(str, files)], check=True,
                       capture_output=True, timeout=60)

        delivered = _wait_for_rtstructs(stack.data_root / "datastore", 2, stack, timeout=300)
    finally:
        stack.stop()

    ours = series[0]
    origin = stack.data_root / "datastore" / ours.StudyInstanceUID / ours.SeriesInstanceUID
    mine = [path for path in delivered if path.parent == origin]
    assert len(mine) == 1
    rtstruct = pydicom.dcmread(mine[0])
    assert rtstruct.PatientID == patient.patient_id
    assert str(rtstruct.PatientName) == patient.dicom_name
    assert rtstruct.StudyInstanceUID == ours.StudyInstanceUID
    refs = referenced_uids(rtstruct)
    assert refs["series"] == {ours.SeriesInstanceUID}
    assert refs["frame_of_reference"] == {ours.FrameOfReferenceUID}
    assert refs["contour_images"] <= {ds.SOPInstanceUID for ds in series}
    demo = [path for path in delivered if path.parent != origin]
    assert len(demo) == 1, "the first-start demo series should come back too"
