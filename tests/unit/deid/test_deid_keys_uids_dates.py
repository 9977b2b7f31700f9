"""Keys, keyed UIDs, pseudonyms and date shifts: deterministic, keyed, and well-formed."""

import json
import re
import uuid

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from deid.dicom import parser as deid_parser
from dicom_ops.deid.dates import shift_da, shift_dt
from dicom_ops.deid.keys import DeidKeys, hkdf_sha256
from dicom_ops.deid.pseudonym import (
    PSEUDONYM_ALPHABET,
    date_offset_days,
    pseudonym,
)
from dicom_ops.deid.recipe import SKIP_TAGS
from dicom_ops.deid.uids import (
    CLASS_UID_TAGS,
    KIND_BY_TAG,
    UidMapper,
    deid_uid,
    is_instance_uid,
)
from pydicom.datadict import dictionary_keyword, dictionary_VR, tag_for_keyword

SECRET = b"installation-secret-0123456789"
KEYS = DeidKeys.from_secret(SECRET)
STUDY_UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"
UID_PATTERN = re.compile(r"2\.25\.[1-9][0-9]{0,38}")


# --- keys ---------------------------------------------------------------------------------------


def test_our_hkdf_is_the_standard_one():
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=b"dicom-ops deid uid v1").derive(SECRET)
    assert hkdf_sha256(SECRET, b"dicom-ops deid uid v1") == expected


def test_each_purpose_gets_its_own_key_and_repr_shows_none():
    keys = [KEYS.uid, KEYS.pseudonym, KEYS.date_shift, KEYS.subject]
    assert len(set(keys)) == 4 and all(len(k) == 32 for k in keys)
    assert DeidKeys.from_secret(SECRET) == KEYS
    assert DeidKeys.from_secret(SECRET + b"x") != KEYS
    assert SECRET.decode() not in repr(KEYS) and KEYS.uid.hex() not in repr(KEYS)


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        DeidKeys.from_secret("too-short")


# --- UIDs ---------------------------------------------------------------------------------------


def test_a_replaced_uid_is_a_2_25_uuid_of_at_most_64_characters():
    new = deid_uid(STUDY_UID, KEYS.uid)
    assert UID_PATTERN.fullmatch(new) and len(new) <= 64
    as_uuid = uuid.UUID(int=int(new[5:]))
    assert as_uuid.version == 8 and as_uuid.variant == uuid.RFC_4122


def test_the_same_uid_and_key_always_give_the_same_replacement():
    assert deid_uid(STUDY_UID, KEYS.uid) == deid_uid(STUDY_UID, DeidKeys.from_secret(SECRET).uid)
    assert deid_uid(STUDY_UID, KEYS.uid) != deid_uid(STUDY_UID + "1", KEYS.uid)
    assert deid_uid(STUDY_UID, KEYS.uid) != deid_uid(STUDY_UID, DeidKeys.throwaway().uid)


def test_class_uids_and_standard_uids_are_kept():
    ct_image_storage = "1.2.840.10008.5.1.4.1.1.2"
    assert not is_instance_uid(tag_for_keyword("SOPClassUID"), ct_image_storage)
    assert not is_instance_uid(tag_for_keyword("SOPClassUID"), "1.3.12.2.1107.5.9.1")  # private
    assert not is_instance_uid(tag_for_keyword("FrameOfReferenceUID"), "1.2.840.10008.1.4.1.1")
    assert is_instance_uid(tag_for_keyword("FrameOfReferenceUID"), STUDY_UID)
    assert is_instance_uid(tag_for_keyword("ReferencedSOPInstanceUID"), STUDY_UID)


def test_uid_tables_name_uid_attributes_of_the_dictionary():
    for tag in CLASS_UID_TAGS | set(KIND_BY_TAG):
        assert dictionary_VR(tag) == "UI", dictionary_keyword(tag)
    assert {dictionary_keyword(t) for t, kind in KIND_BY_TAG.items() if kind == "study"} == {
        "StudyInstanceUID"}
    for tag in CLASS_UID_TAGS:
        keyword = dictionary_keyword(tag)
        assert "Class" in keyword or "Syntax" in keyword or "Creator" in keyword or keyword in {
            "CodingSchemeUID", "ContextUID", "MappingResourceUID", "SOPClassesInStudy"}


def test_the_mapper_remembers_what_each_uid_names():
    mapper = UidMapper(KEYS.uid)
    other = mapper(tag_for_keyword("ReferencedSOPInstanceUID"), STUDY_UID)
    study = mapper(tag_for_keyword("StudyInstanceUID"), STUDY_UID)
    assert other == study
    assert mapper.mapped == {study: (STUDY_UID, "study")}


def test_our_never_touched_tags_are_deids():
    with open(deid_parser.os.path.join(deid_parser.here, "config.json")) as stream:
        skipped = json.load(stream)["get"]["skip"]
    assert {tag_for_keyword(keyword) for keyword in skipped} == set(SKIP_TAGS)


# --- pseudonyms and dates -----------------------------------------------------------------------


def test_the_pseudonym_is_draw_and_ten_consonants_stable_per_patient():
    first = pseudonym("PID00001X", KEYS.pseudonym)
    assert re.fullmatch(rf"DRAW-[{PSEUDONYM_ALPHABET}]{{10}}", first)
    assert pseudonym("PID00001X", KEYS.pseudonym) == first
    assert pseudonym("PID00002X", KEYS.pseudonym) != first
    assert pseudonym("PID00001X", DeidKeys.throwaway().pseudonym) != first


def test_the_date_offset_is_one_to_ten_years_back_and_stable_per_patient():
    offsets = {date_offset_days(f"PID{i:05d}", KEYS.date_shift) for i in range(200)}
    assert all(-3652 <= offset <= -365 for offset in offsets)
    assert len(offsets) > 150
    assert date_offset_days("PID00001", KEYS.date_shift) == date_offset_days(
        "PID00001", KEYS.date_shift)


@pytest.mark.parametrize(("value", "days", "expected"), [
    ("20260314", -400, "20250207"),
    ("20240301", -1, "20240229"),
    ("20260314\\20260101", -1, "20260313\\20251231"),
    ("2026.03.14", -1, "20260313"),
    ("", -400, ""),
    ("20261399", -400, ""),
    ("notadate", -400, ""),
])
def test_dates_shift_by_whole_days_and_unreadable_dates_are_emptied(value, days, expected):
    assert shift_da(value, days) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("20260314101500.123456+0100", "20260313101500.123456+0100"),
    ("20260314", "20260313"),
    ("2026", ""),
])
def test_date_times_shift_their_date_and_keep_their_time(value, expected):
    assert shift_dt(value, -1) == expected
