"""Purpose-specific keys derived from the installation secret.

One secret (``DICOM_OPS_SECRET_KEY``) keys everything, but never directly: each use
gets its own key from HKDF-SHA256 (RFC 5869) with a label, so the UID mapping, the
pseudonyms, the date shifts and the encryption of subject data cannot be played off
against each other. Only the standard library is used: the de-identification engine
stays quick to start.
"""

from __future__ import annotations

import hashlib
import hmac
import os

MIN_SECRET_BYTES = 16
_HASH_BYTES = 32


def hkdf_sha256(secret: bytes, info: bytes, length: int = _HASH_BYTES, salt: bytes = b"") -> bytes:
    """RFC 5869 HKDF with SHA-256: extract with ``salt`` (zeros when empty), expand with ``info``."""
    if length > 255 * _HASH_BYTES:
        raise ValueError("HKDF output too long")
    prk = hmac.new(salt or bytes(_HASH_BYTES), secret, hashlib.sha256).digest()
    output, block, counter = b"", b"", 1
    while len(output) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        output += block
        counter += 1
    return output[:length]


class DeidKeys:
    """The keys of one installation; ``repr`` never shows them."""

    __slots__ = ("uid", "pseudonym", "date_shift", "subject")

    def __init__(self, uid: bytes, pseudonym: bytes, date_shift: bytes, subject: bytes) -> None:
        self.uid = uid
        self.pseudonym = pseudonym
        self.date_shift = date_shift
        self.subject = subject

    def __repr__(self) -> str:
        return "DeidKeys(...)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeidKeys) and all(
            hmac.compare_digest(getattr(self, name), getattr(other, name))
            for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_secret(cls, secret: bytes | str) -> DeidKeys:
        """Derive every key from the installation secret (at least 16 bytes)."""
        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(raw) < MIN_SECRET_BYTES:
            raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes")
        return cls(
            uid=hkdf_sha256(raw, b"dicom-ops deid uid v1"),
            pseudonym=hkdf_sha256(raw, b"dicom-ops deid pseudonym v1"),
            date_shift=hkdf_sha256(raw, b"dicom-ops deid date shift v1"),
            subject=hkdf_sha256(raw, b"dicom-ops subject map fernet v1"),
        )

    @classmethod
    def throwaway(cls) -> DeidKeys:
        """Random keys for one run (``dicom-ops deidentify`` without a configured secret)."""
        return cls.from_secret(os.urandom(32))

    @property
    def fernet_key(self) -> bytes:
        """The subject key in the form ``cryptography.fernet.Fernet`` expects."""
        import base64

        return base64.urlsafe_b64encode(self.subject)
