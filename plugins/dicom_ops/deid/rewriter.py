"""Rewriting the files of one series, one after another, at the byte level.

``SeriesRewriter.prepare`` reads a file's header (``part10.py``) and builds its new
header: every element is looked up in the compiled recipe (``recipe.py``) once per kind,
values that change are computed once the patient is known (pseudonym, date offset,
keyed UIDs). ``write`` writes the header and then has the kernel copy the pixel bytes.

It remembers what repeats across a series, so the second image costs a fraction of the
first: decisions by element header, changed values by their bytes, and whole stretches
of header bytes between the elements that differ from image to image.

Long because ``SeriesRewriter`` is one pass with one set of memories: the flat scan of
the file meta and dataset, the walker for sequences, private and UN elements, and the
deferred values finished once the patient is known all read and fill the same
per-series caches (``fast``, ``segments``, ``last_raw``, ``finished``, ``dropped``) and
the current patient. The scan loop runs for every element of every file and keeps
those caches in locals; split across modules, that state would be passed or looked up
on every element, which is where the engine's speed comes from (``bench/deid.py``).
"""

from __future__ import annotations

import os
import struct

from dicom_ops.deid.dates import shift_da, shift_dt
from dicom_ops.deid.errors import DeidError
from dicom_ops.deid.identifiers import (
    IDENTITY_TAGS,
    OTHER_PATIENT_IDS_SEQUENCE,
    PATIENT_ID,
    SPECIFIC_CHARACTER_SET,
    IdentifierCollector,
    decode_text,
)
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.part10 import (
    EXPLICIT_LE,
    KNOWN_VRS,
    LONG_VRS,
    MAGIC,
    META_START,
    PIXEL_DATA,
    PREAMBLE_BYTES,
    TEXT_VRS,
    UNDEFINED,
    Element,
    Encoding,
    Part10Error,
    Part10File,
)
from dicom_ops.deid.part10_writer import (
    encode_element,
    item_end,
    item_start,
    sequence_end,
    sequence_start,
    write_part10,
)
from dicom_ops.deid.pseudonym import date_offset_days, pseudonym
from dicom_ops.deid.recipe import (
    ADD,
    BLANK,
    CODES,
    DROP,
    FUNC,
    JITTER,
    LITERAL,
    META,
    NESTED,
    PASS,
    REMOVE,
    REPLACE,
    TOP,
    UNTOUCHED,
    VAR,
    Action,
    Recipe,
)
from dicom_ops.deid.uids import UidMapper, is_instance_uid
from dicom_ops.uids import MAX_UID_LENGTH

BURNED_IN_ANNOTATION = 0x00280301
SOP_INSTANCE_UID = 0x00080018
STUDY_INSTANCE_UID = 0x0020000D
GROUP_LENGTH_META = 0x00020000
OUTPUT_SUFFIX = ".dcm"

# Original patient and study attributes kept (encrypted) for re-identification.
SUBJECT_TAGS = {
    0x00080005: "SpecificCharacterSet",
    0x00100010: "PatientName",
    0x00100020: "PatientID",
    0x00100021: "IssuerOfPatientID",
    0x00100030: "PatientBirthDate",
    0x00100032: "PatientBirthTime",
    0x00100040: "PatientSex",
    0x00101010: "PatientAge",
    0x00101000: "OtherPatientIDs",
    0x00101001: "OtherPatientNames",
    0x00080050: "AccessionNumber",
    0x00200010: "StudyID",
    0x00080020: "StudyDate",
    0x00080030: "StudyTime",
    0x00081030: "StudyDescription",
    0x00080090: "ReferringPhysicianName",
}
WATCHED_TAGS = IDENTITY_TAGS | frozenset(SUBJECT_TAGS) | {BURNED_IN_ANNOTATION}

# What happened to an attribute, for the summary (``SeriesDeidResult.actions``).
KEPT, REMOVED, REPLACED, EMPTIED, SHIFTED, ADDED = (
    "kept", "removed", "replaced", "emptied", "shifted", "added")


class FileOutcome:
    __slots__ = ("index", "output", "burned_in", "patient_key", "subject", "pending")

    def __init__(self, index: int) -> None:
        self.index = index
        self.output = ""
        self.burned_in = False
        self.patient_key = ""
        self.subject: dict[str, str] | None = None
        self.pending: tuple | None = None  # (open file, head, pixel data element, tail)

    def __getstate__(self):
        return (self.index, self.output, self.burned_in, self.patient_key, self.subject)

    def __setstate__(self, state) -> None:
        self.index, self.output, self.burned_in, self.patient_key, self.subject = state
        self.pending = None


class ChunkResult:
    """What one process did with its share of a series (pickled back from helpers)."""

    __slots__ = ("outcomes", "uid_map", "identifiers", "actions", "private_tags_removed",
                 "learned_tags")

    def __init__(self, outcomes, uid_map, identifiers, actions, private_tags_removed,
                 learned_tags) -> None:
        self.outcomes = outcomes
        self.uid_map = uid_map
        self.identifiers = identifiers
        self.actions = actions
        self.private_tags_removed = private_tags_removed
        self.learned_tags = learned_tags

    def __getstate__(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)


class Patient:
    __slots__ = ("pseudonym", "pseudonym_bytes", "offset")

    def __init__(self, patient_key: str, keys: DeidKeys) -> None:
        self.pseudonym = pseudonym(patient_key, keys.pseudonym)
        self.pseudonym_bytes = self.pseudonym.encode("ascii")
        self.offset = date_offset_days(patient_key, keys.date_shift)


# Flags of a top-level element kind, in the fast path.
_KEEP_FLAG = 1  # matched by KEEP: its tag is left untouched at every nesting level
_WATCH_FLAG = 2  # its value is collected (UIDs, identity, burned-in annotation)
_HEADER = struct.Struct("<HH2sH").unpack_from
_U32 = struct.Struct("<L").unpack_from
_NO_TAG = 1 << 40
# What the flat pass does with an element of a kind (below _WHOLE: values read in place).
_COPY, _DROP, _CHANGE, _WHOLE, _PRIVATE, _PIXEL = 0, 1, 2, 3, 4, 5
# Deferred pieces of output, finished once the patient is known.
_STEPS_ENTRY, _TREE_ENTRY, _ADD_ENTRY = 0, 1, 2


class SeriesRewriter:
    """De-identifies files one after another, remembering what repeats across a series."""

    def __init__(self, recipe: Recipe, keys: DeidKeys) -> None:
        self.recipe = recipe
        self.keys = keys
        self.mapper = UidMapper(keys.uid)
        self.patients: dict[str, Patient] = {}
        self.collector = IdentifierCollector()
        self.actions: dict[int, str] = {}
        self.private_removed = 0
        self.known_before = set(recipe.tags.known)
        self.meta_adds = [a for a in recipe.adds if a.add_tag >> 16 == 2]
        self.dataset_adds = [a for a in recipe.adds if a.add_tag >> 16 != 2]
        # Memories that make the second file of a series cheap.
        self.fast: dict[int, dict[bytes, tuple]] = {META: {}, TOP: {}}  # header -> entry
        self.steps: list[tuple] = []  # (tag, VR, steps) of elements whose values change
        self.dropped: dict[bytes, list] = {}  # removed sequence -> identifiers found in it
        # Per level: stretches of header bytes already done, and each tag's last bytes.
        self.segments: dict[int, dict[tuple[bytes, int], tuple]] = {META: {}, TOP: {}}
        self.last_raw: dict[int, dict[int, bytes]] = {META: {}, TOP: {}}
        self.finished: dict[tuple, bytes] = {}  # (step id, value) -> element bytes
        self.uids_in: dict[tuple[int, bytes], tuple[str, ...]] = {}
        self.identity_seen: set[tuple] = set()
        # The file being done.
        self.patient: Patient | None = None
        self.kept_tags: set[int] = set()
        self.position = ""

    # --- one file ---------------------------------------------------------------------------

    def file(self, index: int, total: int, source: str, out_dir: str, want_subject: bool
             ) -> FileOutcome:
        """Prepare and write one file."""
        outcome = self.prepare(index, total, source, want_subject)
        if outcome.pending is not None:
            self.write(outcome, out_dir)
        return outcome

    def prepare(self, index: int, total: int, source: str, want_subject: bool) -> FileOutcome:
        """Read one file and build its new header; the file stays open for ``write``."""
        self.position = f"image {index + 1} of {total}"
        try:
            opened = Part10File(source, self.recipe.tags.vr, WATCHED_TAGS)
        except Part10Error as exc:
            raise DeidError(f"{self.position}: {exc}") from None
        except OSError as exc:
            raise DeidError(f"{self.position}: cannot read the file ({exc.strerror})") from None
        try:
            outcome = self._prepare(index, opened, want_subject)
        except Part10Error as exc:
            opened.close()
            raise DeidError(f"{self.position}: {exc}") from None
        except BaseException:
            opened.close()
            raise
        if outcome.pending is None:
            opened.close()
        return outcome

    def write(self, outcome: FileOutcome, out_dir: str) -> None:
        """Write a prepared file: new header, then the pixel bytes copied by the kernel."""
        opened, head, pixel, tail = outcome.pending
        outcome.pending = None
        try:
            source = (opened.fd, pixel.value_start, pixel.value_end - pixel.value_start) \
                if pixel is not None else None
            write_part10(os.path.join(out_dir, outcome.output), head, source, tail)
        except FileExistsError:
            raise DeidError("two images share a SOP Instance UID; nothing was "
                            "de-identified") from None
        except OSError as exc:
            raise DeidError(f"image {outcome.index + 1}: cannot write ({exc.strerror})") from None
        finally:
            opened.close()

    def _prepare(self, index: int, opened: Part10File, want_subject: bool) -> FileOutcome:
        # 1. Read: flat passes over the file meta and (explicit VR little endian) the
        #    dataset; anything that depends on the patient is left for step 3.
        kept: list[int] = []
        meta: list = []
        self._scan(opened, META_START, opened.dataset_start, META, self.meta_adds, meta, kept)
        dataset: list = []
        elements: list[Element] | None = None
        if opened.encoding is EXPLICIT_LE:
            pixel = self._scan(opened, opened.dataset_start, opened.size, TOP, self.dataset_adds,
                               dataset, kept)
        else:
            elements, pixel = opened.elements(opened.dataset_start)
            kept += [e.tag for e in elements if self.recipe.keeps(e.tag, e.vr)]
        tail_start = opened.pixel_end(pixel) if pixel is not None else opened.size
        trailing_buffer, trailing = opened.trailing(tail_start)
        kept += [e.tag for e in trailing if self.recipe.keeps(e.tag, e.vr)]
        self.kept_tags = set(kept)

        # 2. Who is this: refuse burned-in annotation, collect identifiers, find the patient.
        outcome = FileOutcome(index)
        top = {found[0]: found for found in opened.found if found[3] == 0}
        burned = top.get(BURNED_IN_ANNOTATION)
        if burned is not None and burned[2].strip(b" \0").upper() == b"YES":
            outcome.burned_in = True
            return outcome
        charset = top[SPECIFIC_CHARACTER_SET][2].decode("ascii", "replace").strip(" \0") \
            if SPECIFIC_CHARACTER_SET in top else ""
        self._collect(opened.found, charset)
        outcome.patient_key = self._patient_key(top, charset)
        if want_subject:
            outcome.subject = self._subject(opened.found, top, charset)
        self._set_patient(outcome.patient_key)
        sop = top.get(SOP_INSTANCE_UID)
        original_sop = sop[2].decode("latin-1").strip(" \0") if sop else ""
        if not original_sop:
            raise DeidError(f"{self.position}: no SOP Instance UID (0008,0018)")

        # 3. The new header (the pixel bytes are copied as they are by ``write``).
        meta_bytes = b"".join([part if part.__class__ is bytes else self._finish(part, opened)
                               for part in meta])
        head = [bytes(PREAMBLE_BYTES), MAGIC,
                encode_element(GROUP_LENGTH_META, b"UL", len(meta_bytes).to_bytes(4, "little"),
                               EXPLICIT_LE),
                meta_bytes]
        if elements is None:
            head += [part if part.__class__ is bytes else self._finish(part, opened)
                     for part in dataset]
        else:
            self._top_level(elements, opened.buffer, opened.encoding, TOP, self.dataset_adds, head)
        if pixel is not None:
            head.append(opened.buffer[pixel.start:pixel.value_start])
        tail: list[bytes] = []
        self._top_level(trailing, trailing_buffer, opened.encoding, TOP, [], tail)
        outcome.output = self.mapper.name_for(original_sop) + OUTPUT_SUFFIX
        outcome.pending = (opened, b"".join(head), pixel, b"".join(tail))
        return outcome

    def _scan(self, opened: Part10File, start: int, stop: int, level: int, adds: list[Action],
              out: list, kept: list[int]) -> Element | None:
        """One level of explicit VR little endian elements (file meta or dataset), flat.

        Runs of elements that stay as they are become one slice of the input; a value
        that changes becomes a deferred entry for ``_finish``; sequences, UN and private
        elements go through the walker. Stops at the pixel data and returns it, unread.

        Two memories make the images after the first of a series cheap. What to do with
        an element is looked up by its 8 header bytes (tag, VR and, for most VRs, the
        length). And the stretches between the elements that differ from image to image
        (SOP Instance UID, position, instance number...) are remembered whole, with what
        they became: when the same bytes come again, one comparison replaces the walk.
        """
        buffer = opened.buffer
        size = len(buffer)
        pos = span = start
        # Locals, not globals or attributes: this loop runs for every element of every file.
        fast_get = self.fast[level].get
        segments = self.segments[level]
        last_raw = self.last_raw[level]
        unpack_u32 = _U32
        found = opened.found
        append, found_append, kept_append = out.append, found.append, kept.append
        copy, change, whole, undefined = _COPY, _CHANGE, _WHOLE, UNDEFINED
        keep_flag, watch_flag, steps_entry = _KEEP_FLAG, _WATCH_FLAG, _STEPS_ENTRY
        add_index = 0
        next_add = adds[0].add_tag if adds else _NO_TAG
        boundary = True  # a remembered stretch may start here
        recording = None  # (start, len(out), len(kept), len(found), private count, add index)
        pixel = None
        while pos < stop:
            if pos + 12 > size:
                if pos + 8 > stop:
                    raise Part10Error(f"truncated at byte {stop}")
                buffer = opened.grow(min(pos + 12, opened.size))
                size = len(buffer)
            if boundary:
                boundary = False
                if span < pos:
                    append(buffer[span:pos])
                    span = pos
                segment = segments.get((buffer[pos:pos + 8], add_index))
                if segment is not None:
                    end = pos + len(segment[0])
                    if size < end <= opened.size:
                        buffer = opened.grow(end)
                        size = len(buffer)
                    if buffer.startswith(segment[0], pos):
                        out.extend(segment[1])
                        kept.extend(segment[2])
                        found.extend(segment[3])
                        self.private_removed += segment[4]
                        add_index = segment[5]
                        next_add = adds[add_index].add_tag if add_index < len(adds) else _NO_TAG
                        pos = span = end
                        recording = (pos, len(out), len(kept), len(found),
                                     self.private_removed, add_index)
                        continue
                recording = (pos, len(out), len(kept), len(found), self.private_removed,
                             add_index)
            entry = fast_get(buffer[pos:pos + 8])
            if entry is None:
                entry = self._fast_entry(level, buffer[pos:pos + 8], pos)
            code, tag, vr, flags, step_id, header, length = entry
            if tag >= next_add:
                if span < pos:
                    append(buffer[span:pos])
                span = pos
                while next_add < tag:
                    append((_ADD_ENTRY, adds[add_index]))
                    add_index += 1
                    next_add = adds[add_index].add_tag if add_index < len(adds) else _NO_TAG
                if next_add == tag:  # present: its own program applies the ADD
                    add_index += 1
                    next_add = adds[add_index].add_tag if add_index < len(adds) else _NO_TAG
            if length < 0:
                length = unpack_u32(buffer, pos + 8)[0]
            value_start = pos + header
            if code == _PIXEL:
                value_end = value_start + length if length != undefined else -1
                pixel = Element(tag, vr, vr, pos, value_start, value_end, value_end)
                break
            if code < whole and length != undefined:
                value_end = value_start + length
                if value_end > size:
                    buffer = opened.grow(value_end)
                    size = len(buffer)
                raw = buffer[pos:value_end]
                if last_raw.get(tag) != raw:  # differs from the image before: a stretch ends
                    if tag in last_raw:
                        if span < pos:
                            append(buffer[span:pos])
                            span = pos
                        self._remember(level, recording, buffer, pos, out, kept, found,
                                       add_index)
                        boundary = True
                    last_raw[tag] = raw
                if flags:
                    if flags & keep_flag:
                        kept_append(tag)
                    if flags & watch_flag:
                        found_append((tag, vr, buffer[value_start:value_end], 0))
                if code == copy:
                    pos = value_end
                    continue
                if span < pos:
                    append(buffer[span:pos])
                if code == change:
                    append((steps_entry, step_id, buffer[value_start:value_end]))
                pos = span = value_end
                continue
            if span < pos:
                append(buffer[span:pos])
                span = pos
            before = (len(out), len(kept), len(found), self.private_removed)
            end = self._scan_whole(opened, pos, tag, value_start, length, code, level, out, kept)
            buffer = opened.buffer
            size = len(buffer)
            raw = buffer[pos:end]
            if last_raw.get(tag) != raw:
                if tag in last_raw:
                    self._remember(level, recording, buffer, pos, out, kept, found, add_index,
                                   before)
                    boundary = True
                last_raw[tag] = raw
            pos = span = end
        if span < pos:
            append(buffer[span:pos])
            span = pos
        if pixel is None:
            out.extend((_ADD_ENTRY, add) for add in adds[add_index:])
            add_index = len(adds)
        self._remember(level, recording, buffer, pos, out, kept, found, add_index)
        return pixel

    def _remember(self, level: int, recording: tuple | None, buffer: bytes, end: int, out: list,
                  kept: list[int], found: list, add_index: int, lengths: tuple | None = None
                  ) -> None:
        """Keep the stretch recorded since ``recording`` began, up to ``end`` (and up to
        ``lengths`` = (out, kept, found, private count) when more was added since)."""
        if recording is None:
            return
        start, out_from, kept_from, found_from, private_from, add_from = recording
        out_to, kept_to, found_to, private_to = lengths or (
            len(out), len(kept), len(found), self.private_removed)
        pieces = out[out_from:out_to]
        if end <= start or any(p.__class__ is tuple and p[0] == _TREE_ENTRY for p in pieces):
            return  # a kept sequence points into this file's buffer: not reusable
        self.segments[level][(buffer[start:start + 8], add_from)] = (
            buffer[start:end], pieces, kept[kept_from:kept_to], found[found_from:found_to],
            private_to - private_from, add_index)

    def _scan_whole(self, opened: Part10File, pos: int, tag: int, value_start: int, length: int,
                    code: int, level: int, out: list, kept: list[int]) -> int:
        """A private element, a sequence, a UN element: parsed whole; returns its end."""
        if length != UNDEFINED and value_start + length > opened.size:
            raise Part10Error(f"truncated at byte {opened.size}")
        if code == _PRIVATE:
            self.private_removed += 1
            return opened.element_at(pos).end if length == UNDEFINED else value_start + length
        # A removed sequence is only read for the identifiers in it; the same bytes (the
        # same request attributes in every image of a series) are read once.
        raw = None
        if length != UNDEFINED:
            if value_start + length > len(opened.buffer):
                opened.grow(value_start + length)
            raw = opened.buffer[pos:value_start + length]
            known = self.dropped.get(raw)
            if known is not None:
                opened.found.extend(known)
                return value_start + length
        found_before = len(opened.found)
        element = opened.element_at(pos)
        if self.recipe.keeps(tag, element.vr):
            kept.append(tag)
        if self.recipe.program(level, tag, element.vr)[0] == DROP:
            self._note(level, tag, REMOVED)
            if raw is not None:
                self.dropped[raw] = opened.found[found_before:]
        else:
            out.append((_TREE_ENTRY, element, level))
        return element.end

    def _fast_entry(self, level: int, header_bytes: bytes, pos: int) -> tuple:
        """(code, tag, VR, flags, step id, header size, value length or -1 to read it)."""
        group, number, vr, short_length = _HEADER(header_bytes)
        tag = group << 16 | number
        if vr in LONG_VRS:
            header, length = 12, -1
        elif vr in KNOWN_VRS:
            header, length = 8, short_length
        else:
            raise Part10Error(f"unknown VR at byte {pos}")
        code, flags, step_id = _COPY, 0, -1
        if tag == PIXEL_DATA and level == TOP:
            code = _PIXEL
        elif group & 1:
            code = _PRIVATE
        elif vr == b"SQ" or vr == b"UN":
            code = _WHOLE
        elif level == META and tag == GROUP_LENGTH_META:
            code = _DROP  # written anew
        else:
            kind, steps = self.recipe.program(level, tag, vr)
            code = _COPY if kind in (UNTOUCHED, PASS) else _DROP if kind == DROP else _CHANGE
            flags = (_KEEP_FLAG if self.recipe.keeps(tag, vr) else 0) | (
                _WATCH_FLAG if vr == b"UI" or tag in WATCHED_TAGS else 0)
            if code == _CHANGE:
                step_id = len(self.steps)
                self.steps.append((tag, vr, steps))
            else:
                self.actions[tag] = KEPT if code == _COPY else REMOVED
        entry = self.fast[level][header_bytes] = (code, tag, vr, flags, step_id, header, length)
        return entry

    def _finish(self, entry: tuple, opened: Part10File) -> bytes:
        """The bytes of a deferred entry, once the patient is known."""
        kind = entry[0]
        if kind == _STEPS_ENTRY:
            key = entry[1:]
            done = self.finished.get(key)
            if done is None:
                tag, vr, steps = self.steps[entry[1]]
                parts: list[bytes] = []
                self._changed(TOP, tag, vr, vr, entry[2], steps, EXPLICIT_LE, parts)
                done = self.finished[key] = b"".join(parts)
            return done
        parts = []
        if kind == _ADD_ENTRY:
            key = ("add", entry[1].add_tag)
            done = self.finished.get(key)
            if done is None:
                self._added(entry[1], EXPLICIT_LE, parts)
                done = self.finished[key] = b"".join(parts)
            return done
        self._element(entry[1], opened.buffer, EXPLICIT_LE, entry[2], None, parts)
        return b"".join(parts)

    def _set_patient(self, patient_key: str) -> None:
        patient = self.patients.get(patient_key)
        if patient is None:
            patient = self.patients[patient_key] = Patient(patient_key, self.keys)
        if patient is not self.patient:
            self.finished.clear()  # finished values carry the previous patient's pseudonym
            self.patient = patient

    def _patient_key(self, top: dict, charset: str) -> str:
        found = top.get(PATIENT_ID)
        key = decode_text(found[2], charset) if found else ""
        if not key:
            study = top.get(STUDY_INSTANCE_UID)
            key = study[2].decode("latin-1").strip(" \0") if study else ""
        return key

    def _collect(self, found: list, charset: str) -> None:
        collector = self.collector
        for tag, vr, raw, parent in found:
            if vr == b"UI":
                uids = self.uids_in.get((tag, raw))
                if uids is None:
                    text = raw.decode("latin-1").strip(" \0")
                    uids = self.uids_in[(tag, raw)] = tuple(
                        uid for part in text.split("\\")
                        if is_instance_uid(tag, uid := part.strip(" \0")))
                collector.uids.update(uids)
            elif tag in IDENTITY_TAGS:
                key = (tag, raw, parent, charset)
                if key not in self.identity_seen:
                    self.identity_seen.add(key)
                    text = decode_text(raw, charset, vr.decode("ascii", "replace"))
                    if text:
                        collector.add(tag, text, parent)

    def _subject(self, found: list, top: dict, charset: str) -> dict[str, str]:
        subject = {}
        for tag, keyword in SUBJECT_TAGS.items():
            if tag in top:
                _, vr, raw, _ = top[tag]
                subject[keyword] = decode_text(raw, charset, vr.decode("ascii", "replace"))
        others = [decode_text(raw, charset) for tag, _, raw, parent in found
                  if tag == PATIENT_ID and parent == OTHER_PATIENT_IDS_SEQUENCE]
        if others:
            listed = [v for v in subject.get("OtherPatientIDs", "").split("\\") if v]
            subject["OtherPatientIDs"] = "\\".join(dict.fromkeys(listed + others))
        return subject

    # --- rewriting, element by element ------------------------------------------------------

    def _top_level(self, elements: list[Element], buffer: bytes, encoding: Encoding, level: int,
                   adds: list[Action], out: list[bytes]) -> None:
        pending = list(adds)
        for element in elements:
            while pending and pending[0].add_tag < element.tag:
                self._added(pending.pop(0), encoding, out)
            if pending and pending[0].add_tag == element.tag:
                pending.pop(0)
            self._element(element, buffer, encoding, level, None, out)
        for add in pending:
            self._added(add, encoding, out)

    def _element(self, element: Element, buffer: bytes, encoding: Encoding, level: int,
                 parent_path: str | None, out: list[bytes]) -> None:
        tag = element.tag
        if tag >> 16 & 1:  # private tags go first, whatever the recipe says
            self.private_removed += 1
            return
        if level == NESTED and tag in self.kept_tags:
            out.append(buffer[element.start:element.end])
            return
        recipe = self.recipe
        path = None
        if recipe.path_dependent:
            keyword = recipe.tags.info(tag)[0]
            path = keyword if parent_path is None else f"{parent_path}__{keyword}"
        kind, steps = recipe.program(level, tag, element.vr, path)
        if kind == DROP:
            self._note(level, tag, REMOVED)
        elif kind == UNTOUCHED or (kind == PASS and element.items is None):
            self._note(level, tag, KEPT)
            out.append(buffer[element.start:element.end])
        elif kind == PASS:
            self._note(level, tag, KEPT)
            self._sequence(element, buffer, encoding, path, out)
        elif element.items is not None:
            self._changed_sequence(element, buffer, encoding, level, path, steps, out)
        else:
            self._changed(level, tag, element.vr, element.file_vr,
                          buffer[element.value_start:element.value_end], steps, encoding, out)

    def _changed(self, level: int, tag: int, vr: bytes, file_vr: bytes, original: bytes, steps,
                 encoding: Encoding, out: list[bytes]) -> None:
        value = self._run(tag, vr, original, steps)
        if value is None:
            self._note(level, tag, REMOVED)
            return
        if value is original or value == original:
            self._note(level, tag, KEPT)
        else:
            if vr not in TEXT_VRS and value:
                raise DeidError(f"{self.position}: the recipe puts text into "
                                f"{self._tag_name(tag)}, a {vr.decode()} attribute")
            self._note(level, tag, _what_changed(steps, value))
        write_vr = vr if file_vr in (b"UN", b"") else file_vr
        out.append(encode_element(tag, write_vr, value, encoding))

    def _changed_sequence(self, element: Element, buffer: bytes, encoding: Encoding, level: int,
                          path: str | None, steps, out: list[bytes]) -> None:
        value = self._run(element.tag, b"SQ", b"\0", steps)  # a stand-in: sequences have no text
        codes = _codes_added(steps)
        if value is not None and codes is not None:  # the declaration replaces what was there
            self._note(level, element.tag, ADDED)
            out.append(_code_sequence(element.tag, codes, encoding))
        elif value is None:
            self._note(level, element.tag, REMOVED)
        elif value == b"\0":  # steps that do not touch a sequence (JITTER)
            self._note(level, element.tag, KEPT)
            self._sequence(element, buffer, encoding, path, out)
        elif value:
            raise DeidError(f"{self.position}: the recipe replaces sequence "
                            f"{self._tag_name(element.tag)} with a value")
        else:
            self._note(level, element.tag, EMPTIED)
            vr = element.file_vr if element.file_vr == b"UN" else b"SQ"
            out.append(encode_element(element.tag, vr, b"", encoding))

    def _sequence(self, element: Element, buffer: bytes, encoding: Encoding, path: str | None,
                  out: list[bytes]) -> None:
        item_encoding = element.item_encoding or encoding
        out.append(sequence_start(element.tag, element.file_vr, encoding))
        for item in element.items or ():
            out.append(item_start(item_encoding))
            for child in item:
                self._element(child, buffer, item_encoding, NESTED, path, out)
            out.append(item_end(item_encoding))
        out.append(sequence_end(item_encoding))

    def _added(self, add: Action, encoding: Encoding, out: list[bytes]) -> None:
        vr = add.add_vr.encode()
        value = self._run(add.add_tag, vr, None, self.recipe.add_program(add))
        if value is not None and add.spec[0] == CODES:
            self._note(TOP, add.add_tag, ADDED)
            out.append(_code_sequence(add.add_tag, add.spec[1], encoding))
        elif value is not None:
            self._note(TOP, add.add_tag, ADDED)
            out.append(encode_element(add.add_tag, vr, value,
                                      EXPLICIT_LE if add.add_tag >> 16 == 2 else encoding))

    def _run(self, tag: int, vr: bytes, original: bytes | None, steps) -> bytes | None:
        """The value after the steps (``original`` itself when unchanged), None if removed."""
        present = original is not None
        value = original
        for action, spec in steps:
            if action == ADD:
                present, value = True, self._resolve(spec, tag, b"")
            elif not present:
                continue
            elif action == REMOVE:
                present = False
            elif action == BLANK:
                value = b""
            elif action == REPLACE:
                new = self._resolve(spec, tag, value)
                if new is not None:
                    value = new
            elif action == JITTER and value and vr in (b"DA", b"DT"):
                days = self.patient.offset if spec[0] == VAR else int(spec[1])
                text = value.decode("latin-1")
                value = (shift_da(text, days) if vr == b"DA" else shift_dt(text, days)).encode(
                    "latin-1")
        return value if present else None

    def _resolve(self, spec, tag: int, current: bytes) -> bytes | None:
        kind, name = spec
        if kind == LITERAL:
            return name
        if kind == VAR:
            return self.patient.pseudonym_bytes if name == "pseudonym" else b""
        if kind == FUNC:
            return self._map_uids(tag, current)
        if kind == CODES:
            return b""  # a stand-in: the sequence is written by _code_sequence
        return None

    def _map_uids(self, tag: int, raw: bytes) -> bytes:
        text = raw.decode("latin-1").strip(" \0")
        if not text:
            return raw
        mapped = []
        for part in text.split("\\"):
            uid = part.strip(" \0")
            if len(uid) > MAX_UID_LENGTH:
                raise DeidError(f"{self.position}: a UID longer than {MAX_UID_LENGTH} characters "
                                f"in {self._tag_name(tag)}")
            mapped.append(self.mapper(tag, uid))
        return "\\".join(mapped).encode("latin-1")

    def _note(self, level: int, tag: int, what: str) -> None:
        if level != NESTED:
            self.actions[tag] = what

    def _tag_name(self, tag: int) -> str:
        return f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {self.recipe.tags.info(tag)[0]}".rstrip()

    def forget_results(self) -> None:
        """Start collecting anew (what was found so far is in an earlier ``chunk_result``)."""
        self.collector = IdentifierCollector()
        self.actions = {}
        self.private_removed = 0

    def chunk_result(self, outcomes: list[FileOutcome]) -> ChunkResult:
        learned = {t: i for t, i in self.recipe.tags.known.items() if t not in self.known_before}
        return ChunkResult(outcomes, dict(self.mapper.mapped), self.collector.freeze(),
                            dict(self.actions), self.private_removed, learned)


def _codes_added(steps) -> tuple | None:
    """The codes of the last ADD of a code sequence among ``steps``, if any."""
    codes = None
    for action, spec in steps:
        if action == ADD:
            codes = spec[1] if spec[0] == CODES else None
    return codes


def _code_sequence(tag: int, codes: tuple[tuple[str, str], ...], encoding: Encoding) -> bytes:
    """A sequence of DCM code items (CodeValue, CodingSchemeDesignator, CodeMeaning)."""
    parts = [sequence_start(tag, b"SQ", encoding)]
    for value, meaning in codes:
        parts += [item_start(encoding),
                  encode_element(0x00080100, b"SH", value.encode("ascii"), encoding),
                  encode_element(0x00080102, b"SH", b"DCM", encoding),
                  encode_element(0x00080104, b"LO", meaning.encode("ascii"), encoding),
                  item_end(encoding)]
    parts.append(sequence_end(encoding))
    return b"".join(parts)


def _what_changed(steps, value: bytes) -> str:
    if not value.strip(b" \0"):
        return EMPTIED
    if any(step[0] == JITTER for step in steps) and not any(
            step[0] in (REPLACE, ADD) for step in steps):
        return SHIFTED
    return REPLACED
