"""The patient's pseudonym and date offset, deterministic from the keyed HMAC of the
original Patient ID.

Pseudonym: ``DRAW-`` and ten letters from twenty consonants (about 43 bits). No digits
and no vowels: a pseudonym can never contain a numeric hospital ID or spell a name
part, so the egress check never trips over it, and it never reads as a word.

Date offset: a whole number of days between -3652 and -365 (one to ten years into
the past, never zero), the same for every date of the patient, so intervals between
studies stay true. A patient without a Patient ID is keyed by the Study Instance UID
instead (one pseudonym per study).
"""

from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_PREFIX = "DRAW-"
PSEUDONYM_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
PSEUDONYM_LETTERS = 10
MIN_SHIFT_DAYS = 365
MAX_SHIFT_DAYS = 3652


def _digest(key: bytes, patient_key: str) -> int:
    return int.from_bytes(hmac.new(key, patient_key.encode("utf-8"), hashlib.sha256).digest(),
                          "big")


def pseudonym(patient_key: str, key: bytes) -> str:
    """``DRAW-<10 consonants>`` for the original Patient ID ``patient_key``."""
    number = _digest(key, patient_key)
    letters = []
    for _ in range(PSEUDONYM_LETTERS):
        number, index = divmod(number, len(PSEUDONYM_ALPHABET))
        letters.append(PSEUDONYM_ALPHABET[index])
    return PSEUDONYM_PREFIX + "".join(letters)


def date_offset_days(patient_key: str, key: bytes) -> int:
    """The patient's date shift in days: negative, between -3652 and -365."""
    span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1
    return -(MIN_SHIFT_DAYS + _digest(key, patient_key) % span)
