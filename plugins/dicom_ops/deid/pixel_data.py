"""The egress check's look at pixel data: the image is not searched, what is not the
image is (unless a byte search of everything is asked for).

Pixel data holds the image, and an image is what we send; a byte search of it finds
names in noise by chance and costs most of the check's time. What could smuggle text
out is bytes that are not the image: native pixel data longer than rows x columns x
samples x bits x frames (and its one padding byte) says, or, in encapsulated pixel
data, bytes outside its items. ``bytes_beyond_image`` returns exactly those (nothing
for a well-formed value), and the egress check searches them like any other text;
real files with trailing padding pass, unless the padding spells an identifier. A
value whose size the image attributes do not give is searched whole. With
DICOM_OPS_EGRESS_PIXEL_SEARCH the whole value is searched anyway
(``egress.find_identifiers``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pydicom.dataset import Dataset
from pydicom.uid import UID

PIXEL_DATA = 0x7FE00010
FLOAT_PIXEL_DATA = 0x7FE00008
DOUBLE_FLOAT_PIXEL_DATA = 0x7FE00009
_ITEM = (0xFFFE, 0xE000)
_BITS = {FLOAT_PIXEL_DATA: 32, DOUBLE_FLOAT_PIXEL_DATA: 64}


def _int(dataset: Dataset, keyword: str, default: int | None = None) -> int | None:
    value = dataset.get(keyword, default)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return None


def expected_length(dataset: Dataset, tag: int) -> int | None:
    """Bytes the image needs (before padding), or None when the attributes do not say."""
    rows, columns = _int(dataset, "Rows"), _int(dataset, "Columns")
    samples = _int(dataset, "SamplesPerPixel", 1)
    frames = _int(dataset, "NumberOfFrames", 1) or 1
    bits = _BITS.get(tag) or _int(dataset, "BitsAllocated")
    if None in (rows, columns, samples, bits):
        return None
    pixels = rows * columns * samples * frames
    if dataset.get("PhotometricInterpretation") == "YBR_FULL_422" and tag == PIXEL_DATA:
        pixels = pixels * 2 // 3  # two chroma samples shared by each pair of pixels
    return (pixels * bits + 7) // 8


def is_encapsulated(dataset: Dataset) -> bool:
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    return syntax is not None and UID(syntax).is_encapsulated


def bytes_beyond_image(dataset: Dataset, tag: int, length: int,
                       read: Callable[[], bytes]) -> bytes:
    """The part of a pixel data value that is not the image: ``b""`` when well formed.

    ``length`` is the value length as stored (0xFFFFFFFF: undefined); ``read`` gives the
    value's bytes and is called only when they are needed (encapsulated pixel data, or
    more bytes than the image takes).
    """
    if tag == PIXEL_DATA and is_encapsulated(dataset):
        return _outside_items(read())
    expected = expected_length(dataset, tag)
    if expected is None:
        return read()
    if length <= expected + expected % 2:
        return b""
    return read()[expected:]


def _outside_items(value: bytes) -> bytes:
    """Bytes of an encapsulated value that are not in one of its items (header or body)."""
    position = 0
    while position + 8 <= len(value):
        group, element, size = struct.unpack_from("<HHL", value, position)
        if (group, element) != _ITEM:
            return value[position:]  # whatever follows is not an item
        position += 8 + size
    return value[position:]
