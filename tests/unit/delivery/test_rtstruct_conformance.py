"""Re-identification makes the server's RTSTRUCT a conformant RT Structure Set: the Frame
of Reference module from the CT, other patient IDs in OtherPatientIDsSequence, no retired
attribute anywhere, every Type 2 attribute present, and a missing Type 1 one refused.
(dciodvfy itself runs in tests/integration/delivery/test_rtstruct_conformance.py.)"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from dicom_ops.delivery.conformance import ITEMS, MODULES
from dicom_ops.delivery.origin import ct_position_reference_indicators, deliver_rtstruct
from dicom_ops.delivery.reidentify import reidentify
from dicom_ops.delivery.validation import RtstructRejected
from dicom_ops.devtools.rtstruct_builder import build_rtstruct
from pydicom.datadict import dictionary_is_retired
from pydicom.dataset import Dataset

from tests.factories import write_series
from tests.support.deidentified_job import DeidentifiedJob, deidentified_job, to_bytes

NEW_SOP = "2.25.111111111111111111111111111111111"
NEW_SERIES = "2.25.222222222222222222222222222222222"


@pytest.fixture(scope="module")
def job() -> DeidentifiedJob:
    return deidentified_job(0)


def original_frame(job: DeidentifiedJob) -> str:
    return str(job.originals[0].FrameOfReferenceUID)


def bare(job: DeidentifiedJob) -> Dataset:
    """The server's RTSTRUCT without the Frame of Reference module, as read from its file."""
    rtstruct = build_rtstruct(job.images, job.rois(), sop_instance_uid="2.25.77",
                              frame_of_reference_module=False)
    return pydicom.dcmread(io.BytesIO(to_bytes(rtstruct)))


def as_received(job: DeidentifiedJob) -> Dataset:
    return pydicom.dcmread(io.BytesIO(to_bytes(job.rtstruct())))


def reidentified(job: DeidentifiedJob, rtstruct: Dataset, **changes) -> Dataset:
    arguments = dict(pseudonym=job.pseudonym, new_sop_instance_uid=NEW_SOP,
                     new_series_instance_uid=NEW_SERIES) | changes
    subject = arguments.pop("subject", job.subject)
    return reidentify(rtstruct, job.uid_map, subject, **arguments)


def retired_elements(ds: Dataset) -> list[str]:
    """Every element pydicom's dictionary marks retired, and every group length, at any depth."""
    found = []
    for element in ds.iterall():
        if element.tag.is_private:
            continue
        if element.tag.element == 0 or dictionary_is_retired(element.tag):
            found.append(str(element.tag))
    return found


# --- Frame of Reference module ------------------------------------------------------------


def test_a_bare_server_rtstruct_gets_the_cts_frame_of_reference_module(job):
    # given a server RTSTRUCT without the module, and the CT's position reference
    rtstruct = bare(job)
    assert "FrameOfReferenceUID" not in rtstruct

    output = reidentified(job, rtstruct,
                          position_reference_indicators={original_frame(job): "SN"})

    # then it is in the CT's (original) frame, with the CT's position reference
    assert output.FrameOfReferenceUID == original_frame(job)
    assert output.PositionReferenceIndicator == "SN"


def test_position_reference_is_present_and_empty_when_the_ct_does_not_say(job):
    output = reidentified(job, bare(job))

    assert output.FrameOfReferenceUID == original_frame(job)
    assert "PositionReferenceIndicator" in output and output.PositionReferenceIndicator == ""


def test_the_servers_frame_of_reference_is_mapped_and_the_cts_position_reference_wins(job):
    # given a server that sent the module, with a position reference of its own
    rtstruct = as_received(job)
    rtstruct.PositionReferenceIndicator = "SERVER GUESS"

    output = reidentified(job, rtstruct,
                          position_reference_indicators={original_frame(job): "XY"})

    assert output.FrameOfReferenceUID == original_frame(job)
    assert output.PositionReferenceIndicator == "XY"


def test_the_position_reference_is_read_from_the_ct_in_the_origin_folder(job, tmp_path):
    # given the CT in its origin folder, with a position reference, next to a non-DICOM file
    originals = [pydicom.dcmread(io.BytesIO(to_bytes(ds))) for ds in job.originals]
    for ds in originals:
        ds.PositionReferenceIndicator = "IC"
    folder = tmp_path / "origin"
    write_series(originals, folder)
    (folder / "notes.txt").write_text("not DICOM")

    assert ct_position_reference_indicators(folder, job.uid_map) == {original_frame(job): "IC"}
    assert ct_position_reference_indicators(tmp_path / "gone", job.uid_map) == {}


def test_delivery_completes_a_bare_rtstruct_from_the_ct_in_the_origin_folder(job, tmp_path):
    originals = [pydicom.dcmread(io.BytesIO(to_bytes(ds))) for ds in job.originals]
    for ds in originals:
        ds.PositionReferenceIndicator = "SN"
    folder = tmp_path / "origin"
    write_series(originals, folder)

    path = deliver_rtstruct(to_bytes(bare(job)), folder, job_id=3, uid_map=job.uid_map,
                            subject=job.subject, pseudonym=job.pseudonym, uid_root="2.25",
                            quarantine_dir=tmp_path / "quarantine")

    delivered = pydicom.dcmread(path)
    assert delivered.FrameOfReferenceUID == original_frame(job)
    assert delivered.PositionReferenceIndicator == "SN"


# --- retired attributes -------------------------------------------------------------------


def test_other_patient_ids_come_back_as_sequence_items_not_the_retired_attribute(job):
    subject = job.subject | {"OtherPatientIDs": "MRN-00000-B\\NHS9000000"}

    output = reidentified(job, as_received(job), subject=subject)

    assert "OtherPatientIDs" not in output
    assert [(item.PatientID, item.TypeOfPatientID) for item in output.OtherPatientIDsSequence] \
        == [("MRN-00000-B", "TEXT"), ("NHS9000000", "TEXT")]


def test_no_other_patient_ids_sequence_without_other_ids(job):
    rtstruct = as_received(job)
    rtstruct.OtherPatientIDsSequence = [Dataset()]
    rtstruct.OtherPatientIDsSequence[0].PatientID = job.pseudonym

    output = reidentified(job, rtstruct, subject=job.subject | {"OtherPatientIDs": ""})

    assert "OtherPatientIDsSequence" not in output


def test_no_retired_attribute_is_in_the_output_at_any_depth(job):
    # given a server file with retired attributes: top level, a group length, nested
    rtstruct = as_received(job)
    rtstruct.OtherPatientIDs = job.pseudonym
    rtstruct.RecognitionCode = "ACR-NEMA 2.0"
    rtstruct.add_new(0x30060000, "UL", 1234)  # a group length
    rtstruct.ROIContourSequence[0].ContourSequence[0].ContourSlabThickness = "2.5"
    rtstruct.StructureSetROISequence[0].Location = "12"
    assert len(retired_elements(rtstruct)) == 5

    output = reidentified(job, rtstruct, subject=job.subject | {"OtherPatientIDs": "MRN-1"})

    written = pydicom.dcmread(io.BytesIO(to_bytes(output)))
    assert retired_elements(written) == []


# --- Type 1 and Type 2 ----------------------------------------------------------------------


def test_type2_attributes_the_server_left_out_are_present_and_empty(job):
    rtstruct = as_received(job)
    for keyword in ("SeriesNumber", "OperatorsName", "Manufacturer", "StructureSetDate",
                    "StructureSetTime"):
        delattr(rtstruct, keyword)
    del rtstruct.StructureSetROISequence[0].ROIGenerationAlgorithm
    del rtstruct.RTROIObservationsSequence[1].ROIInterpreter

    output = reidentified(job, rtstruct)

    for keyword in ("SeriesNumber", "OperatorsName", "Manufacturer", "StructureSetDate",
                    "StructureSetTime"):
        assert keyword in output and output[keyword].value in ("", None)
    assert output.StructureSetROISequence[0].ROIGenerationAlgorithm == ""
    assert output.RTROIObservationsSequence[1].ROIInterpreter == ""


def test_every_type1_and_type2_attribute_of_the_table_is_in_the_output(job):
    output = reidentified(job, bare(job))

    for _module, (type1, type2) in MODULES.items():
        for keyword in type1:
            assert output.get(keyword) not in (None, ""), keyword
        for keyword in type2:
            assert keyword in output, keyword
    for item in output.StructureSetROISequence:
        for keyword in ITEMS["StructureSetROISequence"][0] + ITEMS["StructureSetROISequence"][1]:
            assert keyword in item


def test_values_the_server_gave_are_kept(job):
    output = reidentified(job, as_received(job))
    received = as_received(job)

    assert output.Manufacturer == received.Manufacturer
    assert output.StructureSetLabel == received.StructureSetLabel
    assert output.StructureSetDate == received.StructureSetDate
    assert [r.ROIGenerationAlgorithm for r in output.StructureSetROISequence] == \
        [r.ROIGenerationAlgorithm for r in received.StructureSetROISequence]


def test_a_missing_type1_attribute_is_refused_naming_it(job):
    rtstruct = as_received(job)
    del rtstruct.StructureSetLabel

    with pytest.raises(RtstructRejected, match=r"\(3006,0002\) StructureSetLabel, Type 1"):
        reidentified(job, rtstruct)


def test_a_contour_without_its_geometric_type_is_refused_naming_where(job):
    rtstruct = as_received(job)
    del rtstruct.ROIContourSequence[1].ContourSequence[2].ContourGeometricType

    with pytest.raises(RtstructRejected) as rejected:
        reidentified(job, rtstruct)

    assert "(3006,0039)[1].(3006,0040)[2].(3006,0042) ContourGeometricType" in \
        rejected.value.reason


def test_a_refused_file_is_quarantined_and_nothing_is_delivered(job, tmp_path: Path):
    rtstruct = as_received(job)
    del rtstruct.StructureSetLabel
    folder = tmp_path / "origin"
    write_series(job.originals, folder)
    before = sorted(p.name for p in folder.iterdir())

    with pytest.raises(RtstructRejected) as rejected:
        deliver_rtstruct(to_bytes(rtstruct), folder, job_id=9, uid_map=job.uid_map,
                         subject=job.subject, pseudonym=job.pseudonym, uid_root="2.25",
                         quarantine_dir=tmp_path / "quarantine")

    assert rejected.value.quarantined_path is not None
    assert rejected.value.quarantined_path.exists()
    assert sorted(p.name for p in folder.iterdir()) == before
