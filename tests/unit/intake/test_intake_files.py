"""Intake's file handling: UIDs as names, atomic writes, headers read from raw bytes."""

from __future__ import annotations

import zlib

import pytest
from dicom_ops.files import link_or_copy_atomically, write_atomically
from dicom_ops.intake import datastore
from dicom_ops.intake.finished import is_unfinished_name
from dicom_ops.intake.headers import (
    STATUS_INVALID_UID,
    STATUS_MISSING_UID,
    STATUS_UNPARSABLE,
    NotDicom,
    UnusableInstance,
    header_from_dataset_bytes,
    header_from_file,
)
from dicom_ops.intake.quarantine import quarantine
from dicom_ops.uids import is_valid_uid
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from tests.factories import (
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    with_hostile_uids,
    write_non_dicom,
    write_series,
)


@pytest.mark.parametrize("value, valid", [
    ("1.2.840.10008.5.1.4.1.1.2", True),
    ("2.25.123456789", True),
    ("1", True),
    ("1." + "2" * 62, True),
    ("1." + "2" * 63, False),  # 65 characters
    ("", False),
    ("..", False),
    ("1..2", False),
    (".1.2", False),
    ("1.2.", False),
    ("1.2/../../escape", False),
    ("../../../../tmp/evil", False),
    ("1.2.3\\1.2.4", False),
    ("1.2.a", False),
    (None, False),
])
def test_only_valid_uids_are_accepted_as_names(value, valid):
    assert is_valid_uid(value) is valid


def test_hostile_uids_never_make_a_series_folder(tmp_path):
    with pytest.raises(ValueError):
        datastore.series_folder(tmp_path, "../../../../tmp/evil", "1.2/../../escape")


@pytest.mark.parametrize("name, unfinished", [
    ("1.2.3.tmp-1", True), ("scan.tmp", True), ("scan.tmp42", True),
    ("1.2.3", False), ("scan", False), ("tmp", False), ("scan.tmpl.done", False),
])
def test_the_tmp_suffix_marks_unfinished_folders(name, unfinished):
    assert is_unfinished_name(name) is unfinished


def test_an_atomic_write_leaves_no_temporary_file_and_keeps_the_first_copy(tmp_path):
    target = tmp_path / "a.dcm"

    assert write_atomically(target, [b"first"]) is True
    assert write_atomically(target, [b"second"], overwrite=False) is False

    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["a.dcm"]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    def chunks():
        yield b"half"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomically(tmp_path / "a.dcm", chunks())

    assert list(tmp_path.iterdir()) == []


def test_linking_into_the_datastore_keeps_the_source_and_an_existing_target(tmp_path):
    source, target = tmp_path / "src.dcm", tmp_path / "dst.dcm"
    source.write_bytes(b"data")

    assert link_or_copy_atomically(source, target) is True
    assert link_or_copy_atomically(source, target) is False
    assert source.read_bytes() == target.read_bytes() == b"data"


def test_a_quarantined_file_has_a_reason_file_beside_it(tmp_path):
    path = quarantine(tmp_path / "q", [b"bytes"], "cannot parse the dataset",
                      {"calling_aet": "CT1"})

    reason = path.with_name(path.name.replace(".dcm", ".reason.txt")).read_text()
    assert path.read_bytes() == b"bytes"
    assert reason.startswith("reason: cannot parse the dataset\n")
    assert "calling_aet: CT1" in reason


def _encoded(dataset, transfer_syntax: str) -> bytes:
    """The dataset as a C-STORE carries it: no file meta, in ``transfer_syntax``."""
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = transfer_syntax == ImplicitVRLittleEndian
    buffer.is_little_endian = transfer_syntax != ExplicitVRBigEndian
    write_dataset(buffer, dataset)
    raw = buffer.getvalue()
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        raw = compressor.compress(raw) + compressor.flush()
    return raw


@pytest.mark.parametrize("transfer_syntax", [
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
])
def test_the_header_is_read_from_raw_bytes_in_every_uncompressed_encoding(transfer_syntax):
    dataset = make_ct_series(synthetic_patient(0), SeriesGeometry(slices=1))[0]

    header = header_from_dataset_bytes(_encoded(dataset, transfer_syntax), transfer_syntax)

    assert (header.study_uid, header.series_uid, header.sop_uid) == (
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID)
    assert (header.modality, header.description) == ("CT", "Thorax 2.5mm")


@pytest.mark.parametrize("change, status, reason", [
    (lambda d: delattr(d, "StudyInstanceUID"), STATUS_MISSING_UID, "StudyInstanceUID is missing"),
    (lambda d: delattr(d, "SOPInstanceUID"), STATUS_MISSING_UID, "SOPInstanceUID is missing"),
    (with_hostile_uids, STATUS_INVALID_UID, "StudyInstanceUID is not a valid DICOM UID"),
])
def test_an_instance_without_usable_uids_is_refused_with_a_reason(change, status, reason):
    dataset = make_ct_series(synthetic_patient(0), SeriesGeometry(slices=1))[0]
    change(dataset)

    with pytest.raises(UnusableInstance) as refused:
        header_from_dataset_bytes(_encoded(dataset, ExplicitVRLittleEndian),
                                  ExplicitVRLittleEndian)

    assert (refused.value.status, refused.value.reason) == (status, reason)
    assert "evil" not in refused.value.reason


def test_garbage_is_refused_as_unparsable():
    with pytest.raises(UnusableInstance) as refused:
        header_from_dataset_bytes(b"\xfe\xff\x00\xe0" * 100, ExplicitVRLittleEndian)

    assert refused.value.status == STATUS_UNPARSABLE


def test_files_are_told_apart_as_dicom_or_not(tmp_path):
    dicom_file = write_series(make_ct_series(synthetic_patient(1), SeriesGeometry(slices=1)),
                              tmp_path)[0]
    text_file = write_non_dicom(tmp_path / "notes.txt")

    assert header_from_file(dicom_file).modality == "CT"
    with pytest.raises(NotDicom):
        header_from_file(text_file)
