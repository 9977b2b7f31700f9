"""Intake's own file meta encoder writes what pydicom's general writer would."""

from __future__ import annotations

from io import BytesIO

import pytest
from dicom_ops.intake.file_meta import PREAMBLE, file_meta
from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.dsutils import encode_file_meta


def pydicom_file_meta(sop_class, sop_instance, transfer_syntax, calling_aet) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYNETDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = PYNETDICOM_IMPLEMENTATION_VERSION
    if calling_aet:
        meta.SourceApplicationEntityTitle = calling_aet
    return PREAMBLE + encode_file_meta(meta)


@pytest.mark.parametrize("sop_instance", ["1.2.3.4", "1.2.3.45", "2.25." + "9" * 38])
@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("calling_aet", ["CT_SCANNER", "PACS1", None])
def test_the_bytes_are_pydicoms(sop_instance, transfer_syntax, calling_aet):
    ours = file_meta(CTImageStorage, sop_instance, transfer_syntax, calling_aet)

    assert ours == pydicom_file_meta(CTImageStorage, sop_instance, transfer_syntax,
                                     calling_aet)


def test_pydicom_reads_the_file_back():
    dataset_bytes = b"\x08\x00\x60\x00CS\x02\x00CT"  # (0008,0060) Modality CT, explicit LE

    read = dcmread(BytesIO(file_meta(CTImageStorage, "1.2.3", ExplicitVRLittleEndian,
                                     "PACS") + dataset_bytes))

    assert read.file_meta.MediaStorageSOPInstanceUID == "1.2.3"
    assert read.file_meta.SourceApplicationEntityTitle == "PACS"
    assert read.Modality == "CT"


def test_a_value_too_long_for_its_length_field_is_refused():
    with pytest.raises(ValueError, match=r"\(0002,0003\)"):
        file_meta(CTImageStorage, "1" * 70000, ExplicitVRLittleEndian, None)
