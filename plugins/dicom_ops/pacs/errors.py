"""What can go wrong talking to a PACS; messages name the node, never a patient value."""

from __future__ import annotations


class PacsError(RuntimeError):
    """A PACS (or our own listener) did not do what we asked. ``transient``: the next
    run may succeed without anyone changing anything."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class PacsNotConfigured(PacsError):
    """No PACS connection is configured: the query has nothing to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)
