"""The subject map: the original patient and study attributes, encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under a key derived from
the installation secret (``DeidKeys.subject``). A token made under another secret does
not decrypt: re-identification then fails loudly instead of guessing.
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken

from dicom_ops.deid.keys import DeidKeys


class SubjectMapError(ValueError):
    """The subject map cannot be read with this installation's keys."""


def encrypt_subject(subject: dict[str, str], keys: DeidKeys) -> bytes:
    """The demographics as a Fernet token (bytes, safe to store anywhere)."""
    payload = json.dumps(subject, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return Fernet(keys.fernet_key).encrypt(payload)


def decrypt_subject(token: bytes, keys: DeidKeys) -> dict[str, str]:
    """The demographics back from ``encrypt_subject``'s token."""
    try:
        payload = Fernet(keys.fernet_key).decrypt(bytes(token))
    except InvalidToken:
        raise SubjectMapError(
            "the subject map cannot be decrypted with this installation's secret "
            "(was DICOM_OPS_SECRET_KEY changed since the series was sent?)") from None
    return json.loads(payload.decode("utf-8"))
