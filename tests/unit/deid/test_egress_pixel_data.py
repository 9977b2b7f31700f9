"""The egress check and pixel data: the image is not searched, every byte that is not the
image is; a setting asks for a byte search of all of it. And a value repeated across
slices is judged once, but every image that holds a leak is named."""

from __future__ import annotations

import pydicom
from dicom_ops.deid.egress import find_identifiers
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from tests.unit.deid.test_egress import PATIENT, deidentified, plant

NAME = PATIENT.family_name.upper().encode()


def _image_with_the_name_inside(ds) -> None:
    """The name's bytes as pixel values: an image may hold any bytes, by chance too."""
    pixels = bytearray(ds.PixelData)
    pixels[10:10 + len(NAME)] = NAME
    ds.PixelData = bytes(pixels)


def test_a_name_appended_after_the_image_is_found(tmp_path):
    result = deidentified(tmp_path)
    plant(result.files[1], lambda ds: setattr(ds, "PixelData", ds.PixelData + b" " + NAME
                                              + b" "))
    assert find_identifiers(result.files, result.identifiers) == [
        "image 2 of 3: (7FE0,0010) PixelData (bytes beyond the image): patient name part"]


def test_a_name_outside_the_items_of_encapsulated_pixel_data_is_found(tmp_path):
    result = deidentified(tmp_path)

    def encapsulated_with_trailer(ds) -> None:
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([b"\xff\xd8 frame \xff\xd9"]) + b"Name: " + NAME + b"  "
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True

    plant(result.files[0], encapsulated_with_trailer)
    assert find_identifiers(result.files, result.identifiers) == [
        "image 1 of 3: (7FE0,0010) PixelData (bytes beyond the image): patient name part"]


def test_well_formed_encapsulated_pixel_data_passes(tmp_path):
    result = deidentified(tmp_path)

    def encapsulated(ds) -> None:
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([b"\xff\xd8 " + NAME + b" \xff\xd9"])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True

    plant(result.files[0], encapsulated)
    assert find_identifiers(result.files, result.identifiers) == []


def test_the_image_itself_is_searched_only_when_asked(tmp_path):
    # given a name's bytes that happen to be pixel values of an image of the right size
    result = deidentified(tmp_path)
    plant(result.files[2], _image_with_the_name_inside)
    # then the default check passes (an image is what we send), and the byte search finds it
    assert find_identifiers(result.files, result.identifiers) == []
    assert find_identifiers(result.files, result.identifiers, search_pixel_data=True) == [
        "image 3 of 3: (7FE0,0010) PixelData: patient name part"]


def test_a_leak_repeated_in_every_slice_is_named_in_each_and_a_different_one_too(tmp_path):
    result = deidentified(tmp_path)
    comment = f"for {PATIENT.family_name}"
    for path in result.files:
        plant(path, lambda ds: setattr(ds, "ImageComments", comment))
    plant(result.files[2], lambda ds: setattr(ds, "PatientComments", PATIENT.patient_id))
    assert find_identifiers(result.files, result.identifiers) == [
        "image 1 of 3: (0020,4000) ImageComments: patient name part",
        "image 2 of 3: (0020,4000) ImageComments: patient name part",
        "image 3 of 3: (0010,4000) PatientComments: patient ID",
        "image 3 of 3: (0020,4000) ImageComments: patient name part",
    ]
    assert pydicom.dcmread(result.files[0]).ImageComments == comment
