"""DICOM Part 10 files at the byte level: writing what ``part10.py`` read.

Element, sequence and item headers in any of the encodings ``part10.Encoding``
describes, and ``write_part10``: the new header bytes, then the original pixel value
copied by the kernel (``copy_file_range``) without passing through Python. Standard
library only, like the reader, for the same reason: a short-lived de-identification
process does not import pydicom.
"""

from __future__ import annotations

import errno
import os

from dicom_ops.deid.part10 import LONG_VRS, UNDEFINED, Encoding, Part10Error


def element_header(tag: int, vr: bytes, length: int, encoding: Encoding) -> bytes:
    head = encoding.tag_struct.pack(tag >> 16, tag & 0xFFFF)
    if not encoding.explicit:
        return head + encoding.u32.pack(length)
    if vr in LONG_VRS:
        return head + vr + b"\0\0" + encoding.u32.pack(length)
    if length > 0xFFFF:
        raise Part10Error(f"value too long for VR {vr.decode()} in ({tag >> 16:04X},{tag & 0xFFFF:04X})")
    return head + vr + encoding.u16.pack(length)


def encode_element(tag: int, vr: bytes, value: bytes, encoding: Encoding) -> bytes:
    """A whole element; text values are padded to even length (UI with NUL, others space)."""
    if len(value) % 2:
        value += b"\0" if vr == b"UI" else b" "
    return element_header(tag, vr, len(value), encoding) + value


def sequence_start(tag: int, file_vr: bytes, encoding: Encoding) -> bytes:
    """Header of a sequence of undefined length (kept as UN when it was written as UN)."""
    return element_header(tag, file_vr if file_vr == b"UN" else b"SQ", UNDEFINED, encoding)


def item_start(encoding: Encoding) -> bytes:
    return encoding.tag_struct.pack(0xFFFE, 0xE000) + encoding.u32.pack(UNDEFINED)


def item_end(encoding: Encoding) -> bytes:
    return encoding.tag_struct.pack(0xFFFE, 0xE00D) + encoding.u32.pack(0)


def sequence_end(encoding: Encoding) -> bytes:
    return encoding.tag_struct.pack(0xFFFE, 0xE0DD) + encoding.u32.pack(0)


def copy_range(source_fd: int, target_fd: int, offset: int, length: int) -> None:
    """Append ``length`` bytes of the source at ``offset`` to the target, in the kernel."""
    while length > 0:
        copied = 0
        if hasattr(os, "copy_file_range"):
            try:
                copied = os.copy_file_range(source_fd, target_fd, length, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL,
                                     errno.EPERM):
                    raise
        if not copied:
            chunk = os.pread(source_fd, min(length, 1 << 20), offset)
            if not chunk:
                raise Part10Error("the file shrank while it was being read")
            copied = os.write(target_fd, chunk)
        offset += copied
        length -= copied


def write_part10(path: str | os.PathLike, head: bytes, pixel_source: tuple[int, int, int] | None,
                 tail: bytes = b"") -> None:
    """Write ``head`` (preamble to the last element before the pixel value), the pixel
    value copied from ``(fd, offset, length)``, then ``tail``. Fails if ``path`` exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(head)
        while view:
            view = view[os.write(fd, view):]
        if pixel_source is not None:
            copy_range(pixel_source[0], fd, pixel_source[1], pixel_source[2])
        view = memoryview(tail)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
