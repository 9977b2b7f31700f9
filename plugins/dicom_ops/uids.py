"""DICOM UIDs: the one place that knows what a valid one is and how we make new ones.

A UID is digits in dot-separated components, at most 64 characters. We make UIDs in
three ways, all here:

- **random or seeded** (``new_uid``): re-identified RTSTRUCTs get a fresh SOP Instance
  and Series Instance UID under the configured root; with a seed the same seed gives
  the same UID, so a retried delivery finds its own file.
- **from a digest under the UUID arc** (``uuid_uid`` with ``digest_int`` and, for a
  proper RFC 9562 UUID, ``as_uuid8``): ``2.25.<128-bit integer>`` (ITU-T X.667), at
  most 44 characters. De-identification keys the digest (HMAC, ``deid.uids``), the
  devtools hash their inputs; either way the same input always gives the same UID.
- **from a digest under another root** (``uid_under_root``): the synthetic data's UIDs
  under pydicom's root for made-up data.

What the de-identification does with UIDs (which attributes name instances, the keyed
mapper) stays in ``deid.uids``; it builds its UIDs with these helpers. pydicom is
imported only by ``new_uid``: the de-identification engine imports this module and
stays free of pydicom.
"""

from __future__ import annotations

import re
import uuid

UUID_ROOT = "2.25"  # the arc for UUIDs: 2.25.<UUID as a decimal integer>
STANDARD_ROOT = "1.2.840.10008."  # registered by the standard: SOP classes, transfer syntaxes
PYDICOM_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root, for made-up data
MAX_UID_LENGTH = 64

# Transfer syntaxes whose dataset is deflated (PS3.5 A.5), and the syntax of the same
# dataset once inflated. Intake reads headers through the inflation, stores the bytes as
# received; de-identification inflates and writes the inflated syntax.
INFLATED_SYNTAX = {
    "1.2.840.10008.1.2.1.99": "1.2.840.10008.1.2.1",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.95": "1.2.840.10008.1.2.4.94",  # JPIP Referenced Deflate
    "1.2.840.10008.1.2.4.205": "1.2.840.10008.1.2.4.204",  # JPIP HTJ2K Referenced Deflate
}

_UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")
_VERSION_MASK = 0xF << 76
_VERSION_8 = 0x8 << 76
_VARIANT_MASK = 0x3 << 62
_VARIANT_RFC = 0x2 << 62


def is_valid_uid(value: object) -> bool:
    """A DICOM UID: digits in dot-separated components, 1-64 characters.

    Only such values ever become file or folder names, so no ``/``, ``..`` or
    empty component can reach a path.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_UID_LENGTH
        and _UID_PATTERN.fullmatch(value) is not None
    )


def is_standard_uid(value: str) -> bool:
    """True for a UID the DICOM standard registers (a class, never an instance)."""
    return value.startswith(STANDARD_ROOT)


def digest_int(digest: bytes, bits: int = 128) -> int:
    """The first ``bits`` bits (a multiple of 8) of ``digest`` as an integer."""
    return int.from_bytes(digest[: bits // 8], "big")


def as_uuid8(value: int) -> int:
    """``value`` (128 bits) with the version and variant of an RFC 9562 "custom" UUID."""
    value = (value & ~_VERSION_MASK) | _VERSION_8
    return (value & ~_VARIANT_MASK) | _VARIANT_RFC


def uid_under_root(root: str, number: int, *, max_digits: int | None = None) -> str:
    """``<root>.<number>``, keeping only the leading ``max_digits`` digits when given."""
    uid = f"{root.rstrip('.')}.{str(number)[:max_digits]}"
    if len(uid) > MAX_UID_LENGTH:
        raise ValueError(f"a UID under root {root!r} would exceed {MAX_UID_LENGTH} characters")
    return uid


def uuid_uid(value: int) -> str:
    """``2.25.<value>``: a UUID (or a 128-bit digest) as a UID under the UUID arc."""
    return f"{UUID_ROOT}.{value}"


def new_uid(root: str = UUID_ROOT, *, seed: str | None = None) -> str:
    """A new UID under ``root``: ``2.25.<UUID as integer>`` for the UUID root, otherwise
    ``<root>.<digits>`` within 64 characters.

    With ``seed`` the UID is derived from it (UUID version 5) instead of random: the
    same seed gives the same UID, so a retried delivery does not make a second file.
    """
    from pydicom.uid import UID, generate_uid

    root = root.rstrip(".")
    if root == UUID_ROOT:
        value = uuid.uuid5(uuid.NAMESPACE_OID, seed) if seed is not None else uuid.uuid4()
        return uuid_uid(value.int)
    uid = generate_uid(prefix=f"{root}.", entropy_srcs=[seed] if seed is not None else None)
    if not UID(uid).is_valid:
        raise ValueError(f"cannot make a valid UID under root {root!r}")
    return str(uid)
