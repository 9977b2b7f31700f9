"""Bearer tokens of the emulator: one configured access token, and tokens it issues on refresh.

Issued tokens carry their issue time and an HMAC under a key kept in the data
dir, so they survive a restart and expire after ``token_lifetime`` seconds.
The configured access token (``--token``) does not expire by itself; the
``token_expiry`` fault makes every access token expire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from dicom_ops.devtools.emulator.faults import Faults

_PREFIX = "emu1"


class TokenAuthority:
    def __init__(
        self,
        access_token: str,
        refresh_token: str,
        signing_key: bytes,
        token_lifetime: float,
        faults: Faults,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._static = access_token
        self._refresh = refresh_token
        self._key = signing_key
        self.token_lifetime = token_lifetime
        self._faults = faults
        self._clock = clock
        self._started = clock()

    def is_admin(self, token: str | None) -> bool:
        """The admin endpoint answers the configured token only, and faults never apply."""
        return token is not None and hmac.compare_digest(token, self._static)

    def issue(self) -> str:
        issued = int(self._clock() * 1000)
        nonce = secrets.token_hex(8)
        return f"{_PREFIX}.{issued}.{nonce}.{self._sign(issued, nonce)}"

    def check_refresh(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self._refresh)

    def check_access(self, token: str | None) -> bool:
        if not token:
            return False
        now = self._clock()
        if hmac.compare_digest(token, self._static):
            issued = self._started
        else:
            issued_ms = self._verify(token)
            if issued_ms is None:
                return False
            issued = issued_ms / 1000.0
            if now - issued >= self.token_lifetime:
                return False
        expiry = self._faults.token_expiry()
        if expiry is not None:
            lifetime, since = expiry
            if now - max(issued, since) >= lifetime:
                return False
        return True

    def _sign(self, issued: int, nonce: str) -> str:
        message = f"{_PREFIX}|{issued}|{nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def _verify(self, token: str) -> int | None:
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != _PREFIX or not parts[1].isdigit():
            return None
        issued, nonce, signature = int(parts[1]), parts[2], parts[3]
        if not hmac.compare_digest(signature, self._sign(issued, nonce)):
            return None
        return issued
