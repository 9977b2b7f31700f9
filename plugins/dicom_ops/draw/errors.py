"""What can go wrong talking to the DRAW server, as exceptions a caller can act on.

Messages name the endpoint and the HTTP status, never patient data (the server
only ever sees de-identified uploads, and task ids are the server's own).
"""

from __future__ import annotations


class DrawError(Exception):
    """Base of every DRAW client failure."""

    def __init__(self, message: str, *, endpoint: str | None = None,
                 status_code: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status_code = status_code


class DrawBusy(DrawError):
    """503: the server is busy. Back off and try later; this is not a failure."""

    def __init__(self, message: str, *, endpoint: str | None = None,
                 status_code: int | None = 503, retry_after: float | None = None) -> None:
        super().__init__(message, endpoint=endpoint, status_code=status_code)
        self.retry_after = retry_after


class DrawAuthError(DrawError):
    """401 even after refreshing the access token once, or the refresh was refused."""


class DrawNotFound(DrawError):
    """404: the server does not know this task (expired, deleted or never existed)."""


class DrawTransientError(DrawError):
    """5xx, connection refused, timeout: worth retrying later."""


class DrawRejected(DrawError):
    """Any other 4xx (e.g. 400 bad checksum): permanent, retrying the same request won't help."""


class DrawChecksumMismatch(DrawError):
    """The downloaded body does not match the server's ``X-File-Checksum``."""
