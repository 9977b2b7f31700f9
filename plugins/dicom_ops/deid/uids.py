"""Instance UIDs -> ``2.25.<integer>`` from a keyed HMAC of the original.

Which UIDs are replaced: every UI value, at every nesting level and in the file meta,
except class-like UIDs. A UID stays as it is when its attribute names a class,
transfer syntax, coding scheme or similar (``CLASS_UID_TAGS``), or when its value is
one the DICOM standard registers (under ``1.2.840.10008.``: SOP classes, transfer
syntaxes, well-known frames of reference and coding schemes). Everything else names
an instance (study, series, image, frame of reference, referenced object, device
event...) and is mapped: every attribute PS3.15 Table E.1-1 marks U is, including
TemplateExtensionCreatorUID (it names the organisation that extended a template, so it
can point to the hospital; ``include/deid/profile.csv`` lists them all).

The integer is a version-8 (RFC 9562 "custom") UUID made of the first 128 bits of
HMAC-SHA256(uid key, original UID): ``2.25.`` is the arc for UUIDs (ITU-T X.667),
the result is at most 44 characters, and the same original always gives the same
replacement, so a re-sent series keeps its UIDs and references inside a series stay
consistent. The UID arithmetic (the arc, the UUID bits, validity) is ``dicom_ops.uids``;
this module says which UIDs are replaced and keeps the mapping.
"""

from __future__ import annotations

import hashlib
import hmac

from dicom_ops.uids import STANDARD_ROOT, as_uuid8, digest_int, uuid_uid

# Attributes whose UIDs name a kind of thing, never an instance (tags from PS3.6).
CLASS_UID_TAGS = frozenset({
    0x00000002,  # AffectedSOPClassUID
    0x00000003,  # RequestedSOPClassUID
    0x00020002,  # MediaStorageSOPClassUID
    0x00020010,  # TransferSyntaxUID
    0x00020012,  # ImplementationClassUID
    0x00041510,  # ReferencedSOPClassUIDInFile
    0x00041512,  # ReferencedTransferSyntaxUIDInFile
    0x0004151A,  # ReferencedRelatedGeneralSOPClassUIDInFile
    0x00080016,  # SOPClassUID
    0x0008001A,  # RelatedGeneralSOPClassUID
    0x0008001B,  # OriginalSpecializedSOPClassUID
    0x00080062,  # SOPClassesInStudy
    0x0008010C,  # CodingSchemeUID
    0x0008010D,  # ContextGroupExtensionCreatorUID
    0x00080117,  # ContextUID
    0x00080118,  # MappingResourceUID
    0x00081150,  # ReferencedSOPClassUID
    0x04000010,  # MACCalculationTransferSyntaxUID
    0x04000510,  # EncryptedContentTransferSyntaxUID
})

# What a mapped UID names, by the attribute it was found in (uid_map.kind).
KIND_BY_TAG = {
    0x0020000D: "study",  # StudyInstanceUID
    0x0020000E: "series",  # SeriesInstanceUID
    0x00080018: "sop",  # SOPInstanceUID
    0x00020003: "sop",  # MediaStorageSOPInstanceUID
    0x00081155: "sop",  # ReferencedSOPInstanceUID
    0x00041511: "sop",  # ReferencedSOPInstanceUIDInFile
    0x00200052: "frame_of_reference",  # FrameOfReferenceUID
    0x30060024: "frame_of_reference",  # ReferencedFrameOfReferenceUID
    0x300600C2: "frame_of_reference",  # RelatedFrameOfReferenceUID
}

# Attributes that define the object their UID names (rather than refer to it): their
# kind wins when one UID is met in several places.
DEFINING_TAGS = frozenset({0x0020000D, 0x0020000E, 0x00080018, 0x00020003, 0x00200052})


def deid_uid(original: str, key: bytes) -> str:
    """The replacement of ``original``: ``2.25.<UUIDv8 integer>``, keyed and deterministic."""
    digest = hmac.new(key, original.encode("latin-1", "replace"), hashlib.sha256).digest()
    return uuid_uid(as_uuid8(digest_int(digest)))


def is_instance_uid(tag: int, value: str) -> bool:
    """True when the UID ``value`` found in attribute ``tag`` must be replaced."""
    return bool(value) and tag not in CLASS_UID_TAGS and not value.startswith(STANDARD_ROOT)


def uid_kind(tag: int) -> str:
    """``study``, ``series``, ``sop``, ``frame_of_reference`` or ``other`` (see UID_KINDS)."""
    return KIND_BY_TAG.get(tag, "other")


def _rank(tag: int) -> int:
    return 2 if tag in DEFINING_TAGS else 1 if tag in KIND_BY_TAG else 0


class UidMapper:
    """Maps UIDs with one key, remembering each mapping and what it names.

    The kind comes from the attribute the UID was found in; when one UID is met in
    several, a defining attribute (StudyInstanceUID...) wins over a reference.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._memo: dict[str, tuple[str, int]] = {}
        self.mapped: dict[str, tuple[str, str]] = {}  # deid UID -> (original, kind)

    def name_for(self, original: str) -> str:
        """The replacement of ``original`` whatever attribute it is in (file names)."""
        known = self._memo.get(original)
        return known[0] if known is not None else deid_uid(original, self._key)

    def __call__(self, tag: int, original: str) -> str:
        if not is_instance_uid(tag, original):
            return original
        known = self._memo.get(original)
        rank = _rank(tag)
        if known is None:
            new = deid_uid(original, self._key)
            self._memo[original] = (new, rank)
            self.mapped[new] = (original, uid_kind(tag))
        else:
            new, best = known
            if rank > best:
                self._memo[original] = (new, rank)
                self.mapped[new] = (original, uid_kind(tag))
        return new
