"""DICOM Part 10 files at the byte level: a small element walker (reading).

Purpose-built for de-identification speed. It reads the header bytes only, never
decodes pixel data, and leaves every value as raw bytes; the caller decides what each
element becomes and ``part10_writer.write_part10`` writes the new header bytes, then
the original pixel bytes copied by the kernel (``copy_file_range``), in one pass.
Standard library only (and no dataclasses): a short-lived process that de-identifies
a series does not pay for importing pydicom.

Supported: explicit and implicit VR little endian, explicit VR big endian (retired)
and every encapsulated (compressed) transfer syntax, whose fragments pass through
byte for byte; sequences of defined and undefined length, also when encoded as UN.
A deflated dataset (Deflated Explicit VR Little Endian, the JPIP Referenced Deflate
syntaxes) is inflated into an anonymous in-memory file first, whose file meta names
the inflated syntax: the output is then written in that syntax (explicit VR little
endian), pixel data unchanged. Files without the ``DICM`` prefix are refused with
``Part10Error``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from dicom_ops.uids import INFLATED_SYNTAX

PREAMBLE_BYTES = 128
MAGIC = b"DICM"
META_START = PREAMBLE_BYTES + len(MAGIC)
INITIAL_READ = 16 * 1024  # most CT and MR headers fit; more is read when needed

TS_IMPLICIT_LE = "1.2.840.10008.1.2"
TS_EXPLICIT_BE = "1.2.840.10008.1.2.2"
TS_TAG = 0x00020010
META_GROUP_LENGTH = 0x00020000

PIXEL_DATA = 0x7FE00010
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
_UNBOUNDED = 1 << 62  # "up to the delimiter": an item or sequence of undefined length

# VRs whose explicit header is tag, VR, two reserved bytes and a 4-byte length.
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR",
                      b"UT", b"SV", b"UV"})
KNOWN_VRS = LONG_VRS | {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS",
                        b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                        b"US"}
TEXT_VRS = frozenset({b"AE", b"AS", b"CS", b"DA", b"DS", b"DT", b"IS", b"LO", b"LT", b"PN",
                      b"SH", b"ST", b"TM", b"UC", b"UI", b"UR", b"UT"})

VrLookup = Callable[[int], bytes]
META_HEADER = struct.Struct("<HH2sH").unpack_from


class Part10Error(ValueError):
    """The file is not a DICOM Part 10 file we can read; the message says why (no PHI)."""


class _NeedMore(Exception):
    def __init__(self, end: int) -> None:
        self.end = end


class Encoding:
    """How a dataset is encoded: explicit or implicit VR, little or big endian."""

    __slots__ = ("explicit", "little", "tag_struct", "u16", "u32")

    def __init__(self, explicit: bool, little: bool) -> None:
        self.explicit = explicit
        self.little = little
        order = "<" if little else ">"
        self.tag_struct = struct.Struct(order + "HH")
        self.u16 = struct.Struct(order + "H")
        self.u32 = struct.Struct(order + "L")


EXPLICIT_LE = Encoding(explicit=True, little=True)
IMPLICIT_LE = Encoding(explicit=False, little=True)
EXPLICIT_BE = Encoding(explicit=True, little=False)


def encoding_for(transfer_syntax: str) -> Encoding:
    if transfer_syntax in INFLATED_SYNTAX:
        raise Part10Error(f"deflated transfer syntax {transfer_syntax} must be inflated first")
    if transfer_syntax == TS_IMPLICIT_LE:
        return IMPLICIT_LE
    if transfer_syntax == TS_EXPLICIT_BE:
        return EXPLICIT_BE
    return EXPLICIT_LE  # explicit VR little endian and every encapsulated syntax


class Element:
    """One data element: where its bytes are, and its items if it is a sequence."""

    __slots__ = ("tag", "vr", "file_vr", "start", "value_start", "value_end", "end", "items",
                 "item_encoding")

    def __init__(self, tag: int, vr: bytes, file_vr: bytes, start: int, value_start: int,
                 value_end: int, end: int) -> None:
        self.tag = tag
        self.vr = vr  # effective VR: the dictionary's when the file says UN (or nothing)
        self.file_vr = file_vr  # as written (b"" in implicit VR)
        self.start = start
        self.value_start = value_start
        self.value_end = value_end
        self.end = end
        self.items: list[list[Element]] | None = None
        self.item_encoding: Encoding | None = None


# A watched value: (tag, VR, raw value, tag of the enclosing sequence or 0 at the top level).
Found = tuple[int, bytes, bytes, int]


class _Walker:
    def __init__(self, buffer: bytes, vr_of: VrLookup, watch: frozenset[int],
                 found: list[Found]) -> None:
        self.buffer = buffer
        self.vr_of = vr_of
        self.watch = watch
        self.found = found

    def elements(self, pos: int, end: int, encoding: Encoding, parent: int, in_item: bool,
                 stop_at_pixel: bool) -> tuple[list[Element], int, Element | None]:
        """Elements from ``pos`` up to ``end`` (or the item delimiter when ``in_item``)."""
        buffer = self.buffer
        size = len(buffer)
        unpack_tag = encoding.tag_struct.unpack_from
        unpack_u16 = encoding.u16.unpack_from
        unpack_u32 = encoding.u32.unpack_from
        explicit = encoding.explicit
        watch = self.watch
        found = self.found
        result: list[Element] = []
        while pos < end:
            if pos + 8 > size:
                raise _NeedMore(pos + 8)
            group, number = unpack_tag(buffer, pos)
            tag = group << 16 | number
            if group == 0xFFFE:
                if tag == ITEM_END and in_item:
                    return result, pos + 8, None
                raise Part10Error(f"unexpected delimiter at byte {pos}")
            if explicit:
                file_vr = buffer[pos + 4:pos + 6]
                if file_vr in LONG_VRS:
                    if pos + 12 > size:
                        raise _NeedMore(pos + 12)
                    length = unpack_u32(buffer, pos + 8)[0]
                    value_start = pos + 12
                elif file_vr in KNOWN_VRS:
                    length = unpack_u16(buffer, pos + 6)[0]
                    value_start = pos + 8
                else:
                    raise Part10Error(f"unknown VR at byte {pos}")
                vr = file_vr
                if vr == b"UN" and not group & 1:
                    vr = self.vr_of(tag)
            else:
                file_vr = b""
                length = unpack_u32(buffer, pos + 4)[0]
                value_start = pos + 8
                vr = self.vr_of(tag)
            if tag == PIXEL_DATA and stop_at_pixel:
                # The value stays on disk; -1 marks encapsulated data whose end is found later.
                value_end = value_start + length if length != UNDEFINED else -1
                return result, pos, Element(tag, vr, file_vr, pos, value_start, value_end,
                                            value_end)
            if length == UNDEFINED and (tag == PIXEL_DATA or vr in (b"OB", b"OW")):
                value_end = self.fragments_end(value_start, encoding)
                element = Element(tag, vr, file_vr, pos, value_start, value_end - 8, value_end)
                pos = value_end
            elif length == UNDEFINED:
                element = Element(tag, b"SQ" if vr != b"UN" else vr, file_vr, pos, value_start,
                                  value_start, value_start)
                item_encoding = encoding if file_vr != b"UN" else IMPLICIT_LE
                element.items, pos = self.items_until_delimiter(value_start, item_encoding, tag)
                element.item_encoding = item_encoding
                element.value_end = pos - 8
                element.end = pos
                element.vr = b"SQ"
            else:
                value_end = value_start + length
                if value_end > size:
                    raise _NeedMore(value_end)
                element = Element(tag, vr, file_vr, pos, value_start, value_end, value_end)
                if vr == b"SQ":
                    item_encoding = encoding if file_vr != b"UN" else IMPLICIT_LE
                    element.items = self.items_within(value_start, value_end, item_encoding, tag)
                    element.item_encoding = item_encoding
                elif vr == b"UI" or tag in watch:
                    found.append((tag, vr, buffer[value_start:value_end], parent))
                pos = value_end
            result.append(element)
        if in_item and end != UNDEFINED and pos > end:
            raise Part10Error(f"item overruns its length at byte {pos}")
        return result, pos, None

    def fragments_end(self, pos: int, encoding: Encoding) -> int:
        """End of encapsulated data held in the buffer (e.g. an icon image)."""
        while True:
            tag, length = self._item_header(pos, encoding)
            if tag == SEQUENCE_END:
                return pos + 8
            if tag != ITEM or length == UNDEFINED:
                raise Part10Error(f"bad fragment at byte {pos}")
            pos += 8 + length

    def _item_header(self, pos: int, encoding: Encoding) -> tuple[int, int]:
        if pos + 8 > len(self.buffer):
            raise _NeedMore(pos + 8)
        group, number = encoding.tag_struct.unpack_from(self.buffer, pos)
        return group << 16 | number, encoding.u32.unpack_from(self.buffer, pos + 4)[0]

    def _item(self, pos: int, length: int, encoding: Encoding, parent: int
              ) -> tuple[list[Element], int]:
        if length == UNDEFINED:
            elements, pos, _ = self.elements(pos, _UNBOUNDED, encoding, parent, True, False)
            return elements, pos
        end = pos + length
        if end > len(self.buffer):
            raise _NeedMore(end)
        elements, pos, _ = self.elements(pos, end, encoding, parent, False, False)
        return elements, end

    def items_within(self, pos: int, end: int, encoding: Encoding, parent: int
                     ) -> list[list[Element]]:
        items = []
        while pos < end:
            tag, length = self._item_header(pos, encoding)
            if tag != ITEM:
                raise Part10Error(f"expected a sequence item at byte {pos}")
            elements, pos = self._item(pos + 8, length, encoding, parent)
            items.append(elements)
        return items

    def items_until_delimiter(self, pos: int, encoding: Encoding, parent: int
                              ) -> tuple[list[list[Element]], int]:
        items = []
        while True:
            tag, length = self._item_header(pos, encoding)
            if tag == SEQUENCE_END:
                return items, pos + 8
            if tag != ITEM:
                raise Part10Error(f"expected a sequence item at byte {pos}")
            elements, pos = self._item(pos + 8, length, encoding, parent)
            items.append(elements)


def _encapsulated_end(fd: int, pos: int, size: int, encoding: Encoding) -> int:
    """End of encapsulated pixel data: walk the fragment headers with small reads."""
    while True:
        header = os.pread(fd, 8, pos)
        if len(header) < 8:
            raise Part10Error("truncated in the pixel data")
        group, number = encoding.tag_struct.unpack_from(header)
        length = encoding.u32.unpack_from(header, 4)[0]
        tag = group << 16 | number
        if tag == SEQUENCE_END:
            return pos + 8
        if tag != ITEM or length == UNDEFINED or pos + 8 + length > size:
            raise Part10Error(f"bad pixel data fragment at byte {pos}")
        pos += 8 + length


class Part10File:
    """An open Part 10 file: header bytes in memory, pixel data left on disk.

    ``vr_of(tag)`` gives the dictionary VR where the file has none (implicit VR, UN).
    Values of ``watch`` tags and of every UI element met by ``elements``/``element_at``
    are appended to ``found``. Close it (it is a context manager).
    """

    def __init__(self, path: str | os.PathLike, vr_of: VrLookup,
                 watch: frozenset[int] = frozenset()) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(self.fd).st_size
            self.buffer = os.pread(self.fd, min(self.size, INITIAL_READ), 0)
            if len(self.buffer) < META_START or self.buffer[PREAMBLE_BYTES:META_START] != MAGIC:
                raise Part10Error("not a DICOM Part 10 file (no DICM prefix)")
            self.vr_of = vr_of
            self.watch = watch
            self.found: list[Found] = []
            self.dataset_start, self.transfer_syntax = self._find_dataset()
            self.inflated_from = ""  # the deflated syntax the file came in, if it did
            if self.transfer_syntax in INFLATED_SYNTAX:
                self._inflate()
            self.encoding = encoding_for(self.transfer_syntax)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Part10File:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def grow(self, end: int) -> bytes:
        """Read more of the header so that bytes up to ``end`` are in the buffer."""
        if end > self.size:
            raise Part10Error(f"truncated at byte {self.size}")
        self.buffer = os.pread(self.fd, min(self.size, max(end + 4096, 4 * len(self.buffer))), 0)
        return self.buffer

    def _retrying(self, parse):
        found_before = len(self.found)
        while True:
            try:
                return parse(_Walker(self.buffer, self.vr_of, self.watch, self.found))
            except _NeedMore as more:
                del self.found[found_before:]
                self.grow(more.end)

    def _find_dataset(self) -> tuple[int, str]:
        """Where the dataset starts after the file meta, and the transfer syntax."""
        pos, transfer_syntax = META_START, ""
        while True:
            if pos + 12 > len(self.buffer):
                self.grow(min(pos + 12, self.size))
                if pos + 8 > len(self.buffer):
                    raise Part10Error(f"truncated at byte {self.size}")
            group, number, vr, length = META_HEADER(self.buffer, pos)
            if group != 0x0002:
                break
            if vr in LONG_VRS:
                length = EXPLICIT_LE.u32.unpack_from(self.buffer, pos + 8)[0]
                pos += 12
            elif vr in KNOWN_VRS:
                pos += 8
            else:
                raise Part10Error(f"unknown VR in the file meta at byte {pos}")
            if pos + length > len(self.buffer):
                self.grow(pos + length)
            if number == 0x0010:
                transfer_syntax = self.buffer[pos:pos + length].decode("ascii", "replace").strip(
                    "\0 ")
            pos += length
        if not transfer_syntax:
            raise Part10Error("file meta has no transfer syntax")
        return pos, transfer_syntax

    def _inflate(self) -> None:
        """Read on from an inflated copy: same file meta but the inflated syntax."""
        # Imported here: part10_inflate builds on this module's constants.
        from dicom_ops.deid.part10_inflate import inflated_copy

        deflated = self.transfer_syntax
        inflated = INFLATED_SYNTAX[deflated]
        target, meta = inflated_copy(self.fd, self.buffer, self.dataset_start, self.size,
                                     inflated)
        os.close(self.fd)
        self.fd = target
        self.size = os.fstat(target).st_size
        self.buffer = os.pread(target, min(self.size, INITIAL_READ), 0)
        self.dataset_start = META_START + len(meta)
        self.transfer_syntax = inflated
        self.inflated_from = deflated

    def element_at(self, pos: int, parent: int = 0) -> Element:
        """The whole element starting at ``pos`` (a sequence with all its items)."""
        return self._retrying(
            lambda walker: walker.elements(pos, pos + 1, self.encoding, parent, False, False)[0][0])

    def elements(self, pos: int) -> tuple[list[Element], Element | None]:
        """Top-level elements from ``pos`` up to the pixel data (returned, value unread)."""
        elements, _, pixel = self._retrying(
            lambda walker: walker.elements(pos, self.size, self.encoding, 0, False, True))
        return elements, pixel

    def pixel_end(self, pixel: Element) -> int:
        """Where the top-level pixel data ends (walking fragment headers if encapsulated)."""
        if pixel.end == -1:
            pixel.value_end = pixel.end = _encapsulated_end(self.fd, pixel.value_start, self.size,
                                                            self.encoding)
        if pixel.end > self.size:
            raise Part10Error(f"truncated in the pixel data at byte {self.size}")
        return pixel.end

    def trailing(self, start: int) -> tuple[bytes, list[Element]]:
        """Elements after the pixel data (rare: padding, signatures), with their own buffer."""
        if start >= self.size:
            return b"", []
        buffer = os.pread(self.fd, self.size - start, start)
        walker = _Walker(buffer, self.vr_of, self.watch, self.found)
        try:
            return buffer, walker.elements(0, len(buffer), self.encoding, 0, False, False)[0]
        except _NeedMore:
            raise Part10Error(f"truncated at byte {self.size}") from None

