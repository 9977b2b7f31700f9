"""Files as they come from real scanners and archives: other encodings, compressed pixel
data, undefined lengths, big headers, elements after the pixel data, broken files."""

from pathlib import Path

import pydicom
import pytest
from dicom_ops.config import REPO_ROOT
from dicom_ops.deid.engine import DeidError, deidentify_series
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.recipe import load_recipe
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_truncated

RECIPE = load_recipe(REPO_ROOT / "include" / "deid" / "deid.dicom")
KEYS = DeidKeys.from_secret("part10-test-secret-0123456789")
TINY = SeriesGeometry(slices=3, rows=8, columns=8)


def save(datasets, folder: Path, **options) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.InstanceNumber}.dcm"
        ds.save_as(path, enforce_file_format=True, **options)
        paths.append(path)
    return paths


def values(path: Path) -> dict[str, str]:
    ds = pydicom.dcmread(path)
    return {e.keyword: str(e.value) for e in ds if e.keyword != "PixelData"}


def uids_only_recipe(folder: Path):
    path = folder / "uids.dicom"
    path.write_text("FORMAT dicom\n%header\nREPLACE select:VR:UI func:deid_uid\n"
                    "REPLACE PatientID var:pseudonym\n")
    return load_recipe(path)


@pytest.mark.parametrize(("syntax", "options"), [
    (ImplicitVRLittleEndian, {"implicit_vr": True}),
    (ExplicitVRBigEndian, {"implicit_vr": False, "little_endian": False}),
])
def test_other_encodings_give_the_same_attributes_as_explicit_little_endian(tmp_path, syntax,
                                                                            options):
    explicit = save(make_ct_series(synthetic_patient(1), TINY), tmp_path / "explicit")
    series = make_ct_series(synthetic_patient(1), TINY)
    for ds in series:
        ds.file_meta.TransferSyntaxUID = syntax
    other = save(series, tmp_path / "other", **options)
    expected = deidentify_series(explicit, tmp_path / "out-explicit", RECIPE, KEYS)
    result = deidentify_series(other, tmp_path / "out-other", RECIPE, KEYS)
    for a, b in zip(expected.files, result.files, strict=True):
        assert values(a) == values(b)
        assert pydicom.dcmread(b).file_meta.TransferSyntaxUID == syntax
    assert result.uid_map == expected.uid_map


def test_compressed_pixel_data_is_copied_without_decoding(tmp_path):
    series = make_ct_series(synthetic_patient(2), TINY)
    for ds in series:
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([b"\xff\xd8 not really a JPEG frame \xff\xd9"])
        ds["PixelData"].VR = "OB"
    files = save(series, tmp_path / "in")
    result = deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    for source, target in zip(files, result.files, strict=True):
        assert pydicom.dcmread(target).PixelData == pydicom.dcmread(source).PixelData
        assert pydicom.dcmread(target).PatientID == result.pseudonym


def test_sequences_and_items_of_undefined_length_are_followed(tmp_path):
    series = make_ct_series(synthetic_patient(3), TINY)
    for ds in series:
        ds["RequestAttributesSequence"].is_undefined_length = True
        for item in ds.RequestAttributesSequence:
            item.is_undefined_length_sequence_item = True
    files = save(series, tmp_path / "in")
    result = deidentify_series(files, tmp_path / "out", uids_only_recipe(tmp_path), KEYS)
    ds = pydicom.dcmread(result.files[0])
    assert ds.RequestAttributesSequence[0].StudyInstanceUID == ds.StudyInstanceUID
    assert ds.StudyInstanceUID.startswith("2.25.")


def test_a_header_bigger_than_the_first_read_is_read_whole(tmp_path):
    series = make_ct_series(synthetic_patient(4), TINY)
    for ds in series:
        block = ds.private_block(0x0011, "BIG VENDOR BLOB", create=True)
        block.add_new(0x01, "OB", b"x" * 200_000)  # removed, but it must be walked over
        ds.ConvolutionKernel = "B30f"
    files = save(series, tmp_path / "in")
    result = deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    ds = pydicom.dcmread(result.files[0])
    assert not [e for e in ds if e.tag.is_private] and ds.ConvolutionKernel == "B30f"


def test_elements_after_the_pixel_data_are_de_identified_too(tmp_path):
    series = make_ct_series(synthetic_patient(5), TINY)
    for ds in series:
        block = ds.private_block(0x7FE1, "TRAILING", create=True)
        block.add_new(0x01, "LO", synthetic_patient(5).patient_id)
        ds.add_new(0xFFFCFFFC, "OB", b"\0" * 8)  # DataSetTrailingPadding
    files = save(series, tmp_path / "in")
    result = deidentify_series(files, tmp_path / "out", RECIPE, KEYS)
    ds = pydicom.dcmread(result.files[0])
    assert not [e for e in ds if int(e.tag) > 0x7FE00010]
    assert synthetic_patient(5).patient_id.encode() not in result.files[0].read_bytes()


def test_broken_files_fail_with_a_clear_reason(tmp_path):
    series = make_ct_series(synthetic_patient(6), TINY)
    truncated = write_truncated(series[0], tmp_path / "truncated.dcm", keep_bytes=900)
    with pytest.raises(DeidError, match="image 1 of 1: truncated"):
        deidentify_series([truncated], tmp_path / "out1", RECIPE, KEYS)
    series[1].file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflated = save(series[1:2], tmp_path / "deflated")[0]
    # Preamble, DICM, the group length element (12 bytes) and the group it counts.
    dataset_start = 144 + pydicom.dcmread(deflated).file_meta.FileMetaInformationGroupLength
    deflated.write_bytes(deflated.read_bytes()[:dataset_start] + b"\xff" * 64)  # not deflate
    with pytest.raises(DeidError, match="image 1 of 1: cannot inflate the deflated dataset"):
        deidentify_series([deflated], tmp_path / "out2", RECIPE, KEYS)


def test_a_deflated_file_is_inflated_and_written_as_explicit_little_endian(tmp_path):
    """Deflated Explicit VR Little Endian: the output says explicit VR little endian in its
    file meta, and holds what de-identifying the explicit file holds, pixels unchanged."""
    explicit = save(make_ct_series(synthetic_patient(7), TINY), tmp_path / "explicit")
    series = make_ct_series(synthetic_patient(7), TINY)
    for ds in series:
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflated = save(series, tmp_path / "deflated")
    assert pydicom.dcmread(deflated[0]).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian

    expected = deidentify_series(explicit, tmp_path / "out-explicit", RECIPE, KEYS)
    result = deidentify_series(deflated, tmp_path / "out", RECIPE, KEYS)

    for want, got, original in zip(expected.files, result.files, deflated, strict=True):
        ds = pydicom.dcmread(got)
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert values(got) == values(want)
        assert ds.PixelData == pydicom.dcmread(original).PixelData
        assert synthetic_patient(7).patient_id.encode() not in got.read_bytes()
