"""Inflating a deflated dataset (PS3.5 A.5) for ``part10.Part10File``.

The copy is an anonymous file (in memory where the system has ``memfd_create``), so
the inflated patient data never gets a path: the preamble, the file meta with the
inflated transfer syntax (and a group length to match), then the inflated dataset.
Standard library only, like ``part10``.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib

from dicom_ops.deid.part10 import (
    EXPLICIT_LE,
    LONG_VRS,
    MAGIC,
    META_HEADER,
    META_START,
    PREAMBLE_BYTES,
    TS_TAG,
    Part10Error,
)

META_GROUP_LENGTH = 0x00020000
INFLATE_CHUNK = 1 << 20
# The copy is in memory: bound what a hostile stream can make of it.
MAX_INFLATED_BYTES = 4 << 30


def inflated_copy(source: int, buffer: bytes, dataset_start: int, size: int,
                  transfer_syntax: str) -> tuple[int, bytes]:
    """The descriptor of the inflated copy of ``source``, and its new file meta bytes."""
    meta = meta_with_syntax(buffer[META_START:dataset_start], transfer_syntax)
    target = _anonymous_file()
    try:
        _write_all(target, buffer[:PREAMBLE_BYTES] + MAGIC + meta)
        _inflate_into(source, dataset_start, size, target)
    except BaseException:
        os.close(target)
        raise
    return target, meta


def meta_with_syntax(meta: bytes, transfer_syntax: str) -> bytes:
    """File meta elements (explicit VR little endian) with another transfer syntax and
    the group length to match."""
    elements = []
    pos = 0
    while pos < len(meta):
        group, number, vr, length = META_HEADER(meta, pos)
        header = 8
        if vr in LONG_VRS:
            length = EXPLICIT_LE.u32.unpack_from(meta, pos + 8)[0]
            header = 12
        tag = group << 16 | number
        if tag == TS_TAG:
            value = transfer_syntax.encode("ascii")
            value += b"\0" * (len(value) % 2)
            elements.append(struct.pack("<HH2sH", group, number, b"UI", len(value)) + value)
        elif tag != META_GROUP_LENGTH:
            elements.append(meta[pos:pos + header + length])
        pos += header + length
    body = b"".join(elements)
    return struct.pack("<HH2sHL", 0x0002, 0x0000, b"UL", 4, len(body)) + body


def _anonymous_file() -> int:
    """A file with no name (in memory where the system has memfd): PHI never gets a path."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("dicom-ops-inflated", os.MFD_CLOEXEC)
    handle = tempfile.TemporaryFile()
    fd = os.dup(handle.fileno())
    handle.close()
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _inflate_into(source: int, start: int, size: int, target: int) -> None:
    """Inflate the raw deflate stream (PS3.5 A.5: no zlib header) from ``start``."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    written = 0
    pos = start
    try:
        while pos < size and not inflater.eof:
            pending = os.pread(source, min(INFLATE_CHUNK, size - pos), pos)
            pos += len(pending)
            while pending:
                chunk = inflater.decompress(pending, INFLATE_CHUNK)
                pending = inflater.unconsumed_tail
                written += len(chunk)
                if written > MAX_INFLATED_BYTES:
                    raise Part10Error(f"the deflated dataset inflates to more than "
                                      f"{MAX_INFLATED_BYTES >> 30} GiB")
                _write_all(target, chunk)
        _write_all(target, inflater.flush())
    except zlib.error:
        raise Part10Error("cannot inflate the deflated dataset (corrupt deflate stream)") from None
    if not inflater.eof:
        raise Part10Error("the deflated dataset is truncated")
