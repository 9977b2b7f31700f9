"""C-STORE to a DICOM node (TPS, PACS, archive): one association per attempt, every
status checked, transient failures retried with a growing wait.

Transient (retried): the TCP connection fails (nothing listening yet, host down),
the association is rejected or aborted, the peer does not answer in time, or it
answers "out of resources". Not retried, because asking again cannot help: a
permanent rejection that names a configuration mistake (unknown called or calling
AE title), and a refusal of a file (SOP class not supported, data set does not
match, not authorised...). Files already stored are not sent again.

Messages name the node as ``CALLEDAE@host:port`` and the DICOM status; they
never name a patient value (no file names, which may carry original UIDs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

from dicom_ops.delivery.tls import ClientTls

log = logging.getLogger(__name__)

MAX_CONTEXTS = 128
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
# "Refused: out of resources" and "resource limitation": the node may recover.
TRANSIENT_STATUSES = frozenset(range(0xA700, 0xA800)) | {0x0213}
REJECTED_PERMANENT = 0x01
# Permanent rejections that are configuration mistakes: asking again cannot help.
_REJECTION_HINTS = {
    (1, 3): "the node does not know our calling AE title {calling_aet}: register it there",
    (1, 7): "check the called AE title configured for this destination",
    (1, 2): "the node does not speak the DICOM application context",
    (2, 2): "the node does not support this DICOM protocol version",
}


def check_ae_title(value: str, what: str = "AE title") -> str:
    """``value`` if it is a usable AE title (1-16 printable ASCII, no backslash)."""
    stripped = value.strip()
    if not 1 <= len(stripped) <= 16 or not stripped.isascii() or "\\" in stripped:
        raise ValueError(f"{what} {value!r} is not 1-16 ASCII characters without backslash")
    if not stripped.isprintable():
        raise ValueError(f"{what} {value!r} contains control characters")
    return stripped


@dataclass(frozen=True)
class DicomNode:
    """A DICOM node we open associations to (a C-STORE destination, a PACS): where it
    listens, the AE title it answers to, and TLS when it speaks TLS."""

    host: str
    port: int
    called_aet: str
    tls: ClientTls | None = None

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ValueError("DICOM node without a host")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"DICOM node port {self.port!r} is not 1-65535")
        object.__setattr__(self, "called_aet", check_ae_title(self.called_aet, "called AE title"))

    def __str__(self) -> str:
        return f"{self.called_aet}@{self.host}:{self.port}"

    def tls_args(self) -> tuple | None:
        """pynetdicom's ``tls_args`` for ``AE.associate``: the context and the host name
        the certificate must carry; ``None`` for plain DICOM."""
        return (self.tls.context(), self.host) if self.tls else None


@dataclass(frozen=True)
class StoredFile:
    path: Path
    status: int  # 0x0000, or a warning status (0xB000, 0xB006, 0xB007...) the node stored it with


@dataclass(frozen=True)
class StoreReport:
    node: DicomNode
    attempts: int  # associations opened; 1 when the first one did it all
    stored: tuple[StoredFile, ...]

    @property
    def warnings(self) -> tuple[StoredFile, ...]:
        return tuple(item for item in self.stored if item.status != 0x0000)


class StoreFailed(RuntimeError):
    """The node did not store every file; the message names the node and the cause."""

    def __init__(self, node: DicomNode, cause: str, *, attempts: int, status: int | None = None,
                 stored: int = 0) -> None:
        self.node = node
        self.cause = cause
        self.attempts = attempts
        self.status = status
        self.stored = stored
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(f"C-STORE to {node} failed after {tries}: {cause}"
                         + (f" ({stored} file(s) stored before)" if stored else ""))


def describe_status(code: int) -> str:
    """``0xA700 (Refused: Out of Resources)``: a status as people search for it."""
    meaning = STORAGE_SERVICE_CLASS_STATUS.get(code, ("", "unknown status"))[1] or "Success"
    return f"0x{code:04X} ({meaning})"


@dataclass(frozen=True)
class _Outgoing:
    number: int  # 1-based position in the caller's list, for messages
    path: Path
    sop_class: UID
    transfer_syntax: UID


@dataclass(frozen=True)
class DimseFailure:
    cause: str
    transient: bool
    status: int | None = None


def send_files(
    paths: Iterable[Path | str],
    node: DicomNode,
    calling_aet: str,
    *,
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> StoreReport:
    """C-STORE each DICOM Part 10 file to ``node``; raises ``StoreFailed`` unless all are stored.

    A transient failure is retried up to ``retries`` times, waiting ``backoff``,
    then twice that, and so on (``sleep`` does the waiting). ``timeout`` bounds the
    TCP connect, the association negotiation and each C-STORE response.
    """
    calling_aet = check_ae_title(calling_aet, "calling AE title")
    outgoing = _read_outgoing([Path(p) for p in paths])
    stored: list[StoredFile] = []
    attempts = 0
    while True:
        attempts += 1
        newly_stored, failure = _store_once(outgoing[len(stored):], node, calling_aet, timeout)
        stored.extend(newly_stored)
        if failure is None:
            log.info("C-STORE to %s: %d file(s) stored in %d attempt(s)", node, len(stored),
                     attempts)
            return StoreReport(node=node, attempts=attempts, stored=tuple(stored))
        if not failure.transient or attempts > retries:
            raise StoreFailed(node, failure.cause, attempts=attempts, status=failure.status,
                              stored=len(stored))
        wait = backoff * 2 ** (attempts - 1)
        log.warning("C-STORE to %s, attempt %d of %d: %s; retrying in %.1f s", node, attempts,
                    retries + 1, failure.cause, wait)
        sleep(wait)


def _read_outgoing(paths: list[Path]) -> list[_Outgoing]:
    outgoing = []
    for number, path in enumerate(paths, start=1):
        try:
            meta = read_file_meta_info(path)
            sop_class = UID(meta.MediaStorageSOPClassUID)
            transfer_syntax = UID(meta.TransferSyntaxUID)
        except (OSError, AttributeError, ValueError, EOFError) as exc:
            raise ValueError(f"file {number} of {len(paths)} to send is not a DICOM Part 10 "
                             f"file with file meta ({type(exc).__name__})") from exc
        outgoing.append(_Outgoing(number, path, sop_class, transfer_syntax))
    if not outgoing:
        raise ValueError("no files to send")
    return outgoing


def _requested_contexts(outgoing: list[_Outgoing]) -> list[tuple[UID, list[UID]]]:
    """One context per SOP class for uncompressed files (either VR; pynetdicom converts),
    and one per SOP class and compressed syntax (those cannot be converted here)."""
    wanted: dict[tuple[UID, UID | None], None] = {}
    for item in outgoing:
        compressed = item.transfer_syntax if item.transfer_syntax.is_compressed else None
        wanted[(item.sop_class, compressed)] = None
    contexts = [(sop_class, [syntax] if syntax else list(UNCOMPRESSED))
                for sop_class, syntax in wanted]
    if len(contexts) > MAX_CONTEXTS:
        raise ValueError(f"{len(contexts)} SOP class / transfer syntax combinations: more than "
                         f"one association can propose ({MAX_CONTEXTS}); send them in batches")
    return contexts


def _store_once(outgoing: list[_Outgoing], node: DicomNode, calling_aet: str,
                timeout: float) -> tuple[list[StoredFile], DimseFailure | None]:
    ae = AE(ae_title=calling_aet)
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for sop_class, syntaxes in _requested_contexts(outgoing):
        ae.add_requested_context(sop_class, syntaxes)
    heard = PeerReplies()
    assoc = ae.associate(node.host, node.port, ae_title=node.called_aet,
                         tls_args=node.tls_args(),
                         evt_handlers=[(evt.EVT_CONN_OPEN, heard.on_connection),
                                       (evt.EVT_PDU_RECV, heard.on_pdu)])
    if not assoc.is_established:
        return [], association_failure(assoc, calling_aet, heard, timeout, tls=bool(node.tls))
    stored: list[StoredFile] = []
    try:
        for item in outgoing:
            outcome = _store_file(assoc, item, node, timeout)
            if isinstance(outcome, DimseFailure):
                return stored, outcome
            stored.append(StoredFile(item.path, outcome))
    finally:
        if assoc.is_established:
            assoc.release()
    return stored, None


def _store_file(assoc, item: _Outgoing, node: DicomNode, timeout: float) -> int | DimseFailure:
    """The status the node stored the file with, or why it did not."""
    which = f"file {item.number} ({item.sop_class.name})"
    started = time.monotonic()
    try:
        response = assoc.send_c_store(dcmread(item.path))
    except ValueError as exc:  # no accepted presentation context for this file
        log.debug("C-STORE of %s not possible: %s", item.path, exc)
        return DimseFailure(f"the node accepted no presentation context for {which} in "
                        f"{item.transfer_syntax.name}", transient=False)
    if "Status" not in response:
        # pynetdicom gives an empty response both for an abort and for a timeout.
        if time.monotonic() - started < timeout:
            return DimseFailure(f"association aborted while sending {which}", transient=True)
        return DimseFailure(f"no response to the C-STORE of {which} within {timeout:g} s",
                        transient=True)
    code = int(response.Status)
    category = code_to_category(code)
    if category == "Success":
        return code
    if category == "Warning":
        log.warning("C-STORE of %s to %s: stored with warning %s", which, node,
                    describe_status(code))
        return code
    return DimseFailure(f"the node refused {which} with status {describe_status(code)}",
                    transient=code in TRANSIENT_STATUSES, status=code)


class PeerReplies:
    """What the peer did during association, seen from pynetdicom's event handlers.

    The rejection is taken from the PDU itself: a peer that closes the connection
    right after rejecting can make pynetdicom report an abort instead.
    """

    def __init__(self) -> None:
        self.connected = False
        self.rejection: A_ASSOCIATE_RJ | None = None

    def on_connection(self, event) -> None:
        self.connected = True

    def on_pdu(self, event) -> None:
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            self.rejection = event.pdu


def association_failure(assoc, calling_aet: str, heard: PeerReplies, timeout: float, *,
                        tls: bool = False) -> DimseFailure:
    """Why an association was not established, and whether trying again may help
    (shared by every association we open: C-STORE here, C-ECHO/FIND/MOVE/GET in pacs)."""
    if heard.rejection is not None or assoc.is_rejected:
        reply = (heard.rejection.to_primitive() if heard.rejection is not None
                 else assoc.acceptor.primitive)
        cause = (f"association rejected ({reply.result_str.lower()}, "
                 f"{reply.source_str.lower()}: {reply.reason_str})")
        hint = _REJECTION_HINTS.get((reply.result_source, reply.diagnostic))
        if reply.result == REJECTED_PERMANENT and hint:
            return DimseFailure(f"{cause}; {hint.format(calling_aet=calling_aet)}", transient=False)
        return DimseFailure(cause, transient=True)
    if not heard.connected:
        if tls:
            return DimseFailure("connection or TLS handshake failed (nothing listening on that "
                            "port, host unreachable, or the node's certificate is not trusted "
                            "by tls_ca_file / it refused ours)", transient=True)
        return DimseFailure("connection failed (nothing listening on that port, or host unreachable)",
                        transient=True)
    reply = assoc.acceptor.primitive
    if reply is not None and reply.result == 0x00:
        return DimseFailure("the node accepted none of the proposed SOP classes / transfer syntaxes",
                        transient=False)
    return DimseFailure(f"association aborted, or no answer to the association request within "
                    f"{timeout:g} s", transient=True)
