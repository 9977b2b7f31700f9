"""Delivered RTSTRUCTs, and the emulator's, are conformant RT Structure Sets: dicom3tools'
``dciodvfy`` (the validator a TPS vendor or a physicist would run) reports no error.

The files are real: the emulator segments a de-identified upload over HTTP, and the
pipeline steps fetch, re-identify and deliver its result into the CT's origin folder.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pydicom
from dicom_ops.db.models import Transfer
from dicom_ops.db.session import session_scope
from dicom_ops.delivery.reidentify import reidentify
from dicom_ops.devtools.rtstruct_builder import build_rtstruct
from dicom_ops.jobs.claims import claim_next_job
from dicom_ops.jobs.planning import plan_ready_series
from dicom_ops.pipeline.export import prepare_upload, upload_prepared
from dicom_ops.pipeline.import_results import fetch_and_deliver, poll_transfers
from dicom_ops.templates import load_templates
from sqlalchemy import select

from tests.conftest import require_tool
from tests.support.deidentified_job import deidentified_job, to_bytes
from tests.support.pipeline import ready_series_on_disk

# A value a CT may carry (PS3.3 C.7.4.1.1.2: "SN" sternal notch); the synthetic CT has none.
CT_POSITION_REFERENCE = "SN"


@dataclass(frozen=True)
class Verdict:
    errors: list[str]
    warnings: list[str]
    iod: str


def dciodvfy(path: Path) -> Verdict:
    """dciodvfy's findings on ``path``: "Error ..." and "Warning ..." lines, and the IOD it
    recognised (the one other line it writes, all of it on stderr). The warnings are printed (pytest -s shows them) for the report."""
    result = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True,
                            text=True, timeout=120, check=False)
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()
             if line.strip()]
    findings = [line for line in lines if line.startswith(("Error", "Warning"))]
    verdict = Verdict(errors=[line for line in findings if line.startswith("Error")],
                      warnings=[line for line in findings if line.startswith("Warning")],
                      iod=next((line for line in lines if line not in findings), ""))
    print(f"dciodvfy {path.name}: {len(verdict.errors)} error(s), "
          f"{len(verdict.warnings)} warning(s)", *verdict.warnings, sep="\n  ")
    return verdict


def assert_conformant(path: Path) -> Verdict:
    verdict = dciodvfy(path)
    assert verdict.errors == [], "\n".join(verdict.errors)
    assert verdict.iod == "RTStructureSet"
    return verdict


def _with_position_reference(folder: Path) -> None:
    """The CT in its origin folder carries a PositionReferenceIndicator, as many do."""
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.PositionReferenceIndicator = CT_POSITION_REFERENCE
        ds.save_as(path, enforce_file_format=True)


def _through_the_emulator(settings, draw_emulator, tmp_path: Path, patient_index: int
                          ) -> tuple[Path, Path]:
    """(the emulator's RTSTRUCT as downloaded, the RTSTRUCT delivered into the origin folder)."""
    ready = ready_series_on_disk(settings, patient_index=patient_index)
    _with_position_reference(ready.folder)
    client = draw_emulator.client()
    plan_ready_series(settings.db_url, load_templates(settings.templates_dir))
    job_id = claim_next_job(settings.db_url, "test")
    assert job_id is not None
    prepare_upload(settings, job_id)
    upload_prepared(settings, job_id, client)
    with session_scope(settings.db_url) as session:
        task_id = session.scalars(select(Transfer.server_task_id)).one()
    draw_emulator.wait_for_status(task_id)
    from_server = tmp_path / "from-server.dcm"
    client.download_rtstruct(task_id, from_server)
    assert poll_transfers(settings, client).ready == [job_id]
    delivered = fetch_and_deliver(settings, job_id, client)
    assert delivered.parent == ready.folder
    return from_server, delivered


def test_the_emulators_rtstruct_is_conformant(tmp_path):
    # given the RTSTRUCT the emulator builds for a de-identified CT
    job = deidentified_job(0)
    path = tmp_path / "emulator.dcm"
    build_rtstruct(job.images, job.rois(), sop_instance_uid="2.25.1234").save_as(
        path, enforce_file_format=True)

    # then dciodvfy finds no error in it
    assert_conformant(path)


def test_delivered_rtstruct_is_conformant_and_carries_the_cts_frame_of_reference(
        settings, draw_emulator, tmp_path):
    # when a CT goes out, is segmented by the emulator and comes back delivered
    from_server, delivered = _through_the_emulator(settings, draw_emulator, tmp_path, 3)

    # then both the server's file and the delivered one pass dciodvfy without an error
    assert_conformant(from_server)
    verdict = assert_conformant(delivered)
    assert not [w for w in verdict.warnings if "etired" in w]
    # and the delivered one is in the CT's frame with the CT's position reference
    rtstruct = pydicom.dcmread(delivered)
    ct = pydicom.dcmread(next(p for p in sorted(delivered.parent.glob("*.dcm"))
                              if not p.name.startswith("RS.")))
    assert rtstruct.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert rtstruct.PositionReferenceIndicator == CT_POSITION_REFERENCE
    # and the other patient IDs are back, in the sequence, not the retired attribute
    assert [item.PatientID for item in rtstruct.OtherPatientIDsSequence] == \
        [item.PatientID for item in ct.OtherPatientIDsSequence]
    assert "OtherPatientIDs" not in rtstruct


def test_a_server_rtstruct_without_the_frame_of_reference_module_is_delivered_conformant(
        settings, draw_emulator, tmp_path):
    # given a server whose RTSTRUCTs lack the Frame of Reference module
    draw_emulator.set_faults(bare_rtstruct=1)

    from_server, delivered = _through_the_emulator(settings, draw_emulator, tmp_path, 4)

    # then the server's file is not conformant, for exactly that reason...
    errors = dciodvfy(from_server).errors
    assert errors and all("FrameOfReference" in error for error in errors)
    assert "FrameOfReferenceUID" not in pydicom.dcmread(from_server)
    # ...and we deliver a conformant one all the same, with the module from the CT
    assert_conformant(delivered)
    rtstruct = pydicom.dcmread(delivered)
    assert rtstruct.PositionReferenceIndicator == CT_POSITION_REFERENCE
    assert rtstruct.FrameOfReferenceUID == \
        rtstruct.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID


def test_reidentified_rtstruct_with_a_name_outside_ascii_and_other_ids_is_conformant(tmp_path):
    # given subject data with a non-ASCII name and two other patient IDs
    job = deidentified_job(1)
    subject = job.subject | {"PatientName": "MÜLLER^JÜRGEN",
                             "OtherPatientIDs": "MRN-00001-B\\NHS9000001"}
    received = pydicom.dcmread(io.BytesIO(to_bytes(job.rtstruct())))

    output = reidentify(received, job.uid_map, subject, pseudonym=job.pseudonym,
                        new_sop_instance_uid="2.25.4242", new_series_instance_uid="2.25.4343")
    path = tmp_path / "RS.2.25.4242.dcm"
    output.save_as(path, enforce_file_format=True)

    verdict = assert_conformant(path)
    assert verdict.warnings == []
