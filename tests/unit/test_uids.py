"""The one UID module (``dicom_ops.uids``): validity, new UIDs, UIDs derived from digests.

The pinned values are the UIDs the code made before the helpers were merged into this
module: de-identified UIDs are stored in the app DB and re-sent series must keep them,
so the arithmetic must never change.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest
from dicom_ops.deid.uids import deid_uid
from dicom_ops.devtools.rtstruct_builder import _derived_uid
from dicom_ops.devtools.synthetic import synthetic_uid
from dicom_ops.uids import (
    MAX_UID_LENGTH,
    PYDICOM_ROOT,
    as_uuid8,
    digest_int,
    is_standard_uid,
    is_valid_uid,
    new_uid,
    uid_under_root,
    uuid_uid,
)


@pytest.mark.parametrize(("made", "pinned"), [
    (lambda: deid_uid("1.2.3.0", b"k0"), "2.25.284505561072762560019191294299173579800"),
    (lambda: _derived_uid("series", "0"), "2.25.237744792572018336974312484411254203445"),
    (lambda: synthetic_uid("sop", 0, "x", 0),
     "1.2.826.0.1.3680043.8.498.527102567019141600048891252321638583"),
    (lambda: new_uid("2.25", seed="s0"), "2.25.271189490090045802341789843887699802129"),
    (lambda: new_uid("1.2.3", seed="s0"),
     "1.2.3.1105966775930364335046774165426001823362500084216448877968"),
])
def test_derived_uids_are_the_ones_made_before_the_merge(made, pinned):
    assert made() == pinned


def test_a_keyed_uid_is_a_version_8_rfc_uuid_under_the_uuid_arc():
    uid = deid_uid("1.2.840.113619.2.55.3.1", b"installation key")

    value = uuid.UUID(int=int(uid.removeprefix("2.25.")))
    assert uid.startswith("2.25.") and is_valid_uid(uid) and len(uid) <= 44
    assert (value.version, value.variant) == (8, uuid.RFC_4122)


def test_as_uuid8_changes_only_the_version_and_variant_bits():
    value = digest_int(hashlib.sha256(b"anything").digest())

    changed = value ^ as_uuid8(value)

    assert changed & ~((0xF << 76) | (0x3 << 62)) == 0


def test_digest_int_takes_the_leading_bits():
    digest = bytes(range(32))

    assert digest_int(digest) == int.from_bytes(digest[:16], "big")
    assert digest_int(digest, bits=120) == int(digest.hex()[:30], 16)


def test_a_uid_under_a_root_keeps_the_leading_digits_and_fits_64_characters():
    assert uid_under_root(PYDICOM_ROOT, 123456789, max_digits=4) == PYDICOM_ROOT + "1234"
    assert uid_under_root("1.2.3", 45) == "1.2.3.45"
    with pytest.raises(ValueError, match="exceed 64"):
        uid_under_root("1.2.3", 10 ** 60)


def test_uuid_uids_are_the_integer_under_2_25():
    assert uuid_uid(0) == "2.25.0"
    assert len(uuid_uid(2 ** 128 - 1)) == 44 <= MAX_UID_LENGTH


def test_random_new_uids_are_valid_and_different():
    made = {new_uid() for _ in range(20)} | {new_uid("1.2.826.0.1.3680043.10.1") for _ in range(20)}

    assert len(made) == 40 and all(is_valid_uid(uid) for uid in made)


def test_standard_uids_are_told_apart_from_instance_uids():
    assert is_standard_uid("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    assert not is_standard_uid("1.2.840.113619.2.55.3.1")
