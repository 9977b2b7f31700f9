"""DICOMweb nodes (a PACS or archive with a DICOMweb API) and STOW-RS delivery.

The client is ``dicomweb-client``; this module builds it once per node with the
node's authentication (HTTP basic, or a bearer token) and TLS checking, and turns
its answers into our errors. QIDO-RS and WADO-RS (query/retrieve) are used by
``dicom_ops.pacs.dicomweb``; STOW-RS (``stow_files``) by delivery.

``dicomweb-client`` logs Study/Series Instance UIDs at INFO; those are original
UIDs (PHI here), so its logger is kept at WARNING.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread

log = logging.getLogger(__name__)
logging.getLogger("dicomweb_client").setLevel(logging.WARNING)

TIMEOUT_SECONDS = 60.0
# A server error or overload may clear; a 4xx names something a person must fix.
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class DicomWebNode:
    """Where a DICOMweb service lives (``url``: scheme, host, port and path prefix, e.g.
    ``https://pacs.example:8042/dicom-web``) and how we authenticate to it."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)  # bearer token
    verify: bool | str = True  # False, True (system CAs) or a CA bundle file
    name: str = ""  # the connection id, for messages

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"DICOMweb node {self.name or self.url!r}: URL must start with "
                             "http:// or https://")
        if self.token and self.username:
            raise ValueError(f"DICOMweb node {self.name!r}: give a bearer token or a login "
                             "and password, not both")

    def __str__(self) -> str:
        return f"DICOMweb {self.name or self.url}"

    def client(self) -> DICOMwebClient:
        session = requests.Session()
        session.verify = self.verify
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        elif self.username:
            session.auth = (self.username, self.password or "")
        return DICOMwebClient(self.url.rstrip("/"), session=session, timeout=TIMEOUT_SECONDS)


class DicomWebFailed(RuntimeError):
    """A DICOMweb request failed; the message names the node, the request and the HTTP
    status (never a UID or a patient value)."""

    def __init__(self, node: DicomWebNode, what: str, cause: str, *, transient: bool) -> None:
        self.node = node
        self.transient = transient
        super().__init__(f"{what} at {node} failed: {cause}")


def http_failure(node: DicomWebNode, what: str, exc: Exception) -> DicomWebFailed:
    """Our error for what ``requests`` raised (status only: a URL can carry UIDs)."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        hint = " (check the connection's login/password or token)" if status in (401, 403) \
            else ""
        return DicomWebFailed(node, what, f"HTTP {status} {exc.response.reason}{hint}",
                              transient=status in TRANSIENT_HTTP)
    if isinstance(exc, requests.exceptions.SSLError):
        return DicomWebFailed(node, what, "TLS certificate not trusted (set extra verify to a "
                              "CA file)", transient=False)
    return DicomWebFailed(node, what, f"{type(exc).__name__} (server unreachable or too slow)",
                          transient=True)


@dataclass(frozen=True)
class StowReport:
    node: DicomWebNode
    attempts: int
    stored: int


def stow_files(paths: Iterable[Path | str], node: DicomWebNode, *, retries: int = 3,
               backoff: float = 2.0, sleep: Callable[[float], None] | None = None) -> StowReport:
    """STOW-RS every file to ``node`` in one request; raises ``DicomWebFailed`` unless the
    server stored them all. Transient failures (5xx, 429, no connection) are retried."""
    import time

    wait = sleep or time.sleep
    datasets = [dcmread(Path(path)) for path in paths]
    if not datasets:
        raise ValueError("no files to send")
    attempts = 0
    while True:
        attempts += 1
        try:
            answer = node.client().store_instances(datasets)
        except (requests.RequestException, OSError) as exc:
            failure = http_failure(node, "STOW-RS", exc)
            if not failure.transient or attempts > retries:
                raise failure from exc
            log.warning("%s, attempt %d of %d; retrying", failure, attempts, retries + 1)
            wait(backoff * 2 ** (attempts - 1))
            continue
        failed = len(getattr(answer, "FailedSOPSequence", None) or [])
        if failed:
            raise DicomWebFailed(node, "STOW-RS", f"the server refused {failed} of "
                                 f"{len(datasets)} instance(s)", transient=False)
        log.info("STOW-RS to %s: %d instance(s) stored in %d attempt(s)", node, len(datasets),
                 attempts)
        return StowReport(node=node, attempts=attempts, stored=len(datasets))
