"""The DICOM listener: a pynetdicom storage SCP that files series into the datastore.

C-ECHO, and C-STORE for every storage SOP class (retired ones included) in every
transfer syntax (``negotiation``): instances are stored as they come, never decoded.
The C-STORE handler reads five header fields, writes the encoded bytes behind a file
meta header, and returns; the file is fsynced in the background and at the latest
before the association's release is answered (``durability``); the completion
checker thread (``completion``) decides when a series is finished.

Statuses returned to the sender:

- ``0x0000`` stored (or already stored: a duplicate SOP Instance UID is kept once);
- ``0xA700`` out of resources: free disk below ``DICOM_OPS_MIN_FREE_DISK``, or the
  app DB or disk failed; the sender may retry later;
- ``0xC001`` unparsable, ``0xC002`` a Study/Series/SOP Instance UID missing,
  ``0xC003`` one of them not a valid UID: the bytes go to ``quarantine/``.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pynetdicom import AE, evt
from pynetdicom.pdu_primitives import A_RELEASE
from pynetdicom.sop_class import Verification
from sqlalchemy import Engine

from dicom_ops.config import Settings
from dicom_ops.db.audit import record_event
from dicom_ops.db.session import create_engine_for, session_scope
from dicom_ops.failures import describe, log_failure
from dicom_ops.files import free_disk_bytes
from dicom_ops.intake.completion import CompletionChecker, ReceivingTracker
from dicom_ops.intake.durability import Durability
from dicom_ops.intake.file_meta import file_meta
from dicom_ops.intake.headers import UnusableInstance, header_from_dataset_bytes
from dicom_ops.intake.negotiation import SharedContexts, storage_sop_classes, transfer_syntaxes
from dicom_ops.intake.quarantine import quarantine
from dicom_ops.intake.storage import write_intake_file

log = logging.getLogger("dicom_ops.listener")

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700

# Big PDUs mean fewer trips through pynetdicom's per-PDU machinery: the largest
# single win for throughput. 1 MiB bounds what one peer can make us buffer at once.
MAX_PDU_SIZE = 1 << 20


class DiskGuard:
    """Is there room for another instance? Logs when the answer changes."""

    def __init__(self, folder: Path, minimum: int,
                 probe: Callable[[Path], int] = free_disk_bytes) -> None:
        self.folder = folder
        self.minimum = minimum
        self.probe = probe
        self._had_room = True

    def has_room(self) -> bool:
        if self.minimum <= 0:
            return True
        free = self.probe(self.folder)
        room = free >= self.minimum
        if room != self._had_room:
            self._had_room = room
            if room:
                log.info("free disk back to %d MiB: accepting C-STORE again", free >> 20)
            else:
                log.warning("free disk %d MiB under the data root is below the minimum %d MiB: "
                            "refusing C-STORE with 0xA700 until space returns",
                            free >> 20, self.minimum >> 20)
        return room


@dataclass
class _AssociationCounts:
    calling_aet: str
    stored: int = 0
    duplicates: int = 0
    refused: int = 0


@dataclass
class Listener:
    """One storage SCP. ``start()`` returns once it listens; ``stop()`` closes it."""

    settings: Settings
    free_space: Callable[[Path], int] = free_disk_bytes
    engine: Engine | None = None
    _server: object = field(default=None, init=False, repr=False)
    _counts: dict[int, _AssociationCounts] = field(default_factory=dict, init=False, repr=False)
    _counts_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.engine = self.engine or create_engine_for(settings.db_url)
        self.tracker = ReceivingTracker(self.engine, settings.datastore_dir,
                                        settings.quiet_seconds, source="scp")
        self.checker = CompletionChecker(self.tracker)
        self.durability = Durability()
        self.disk = DiskGuard(settings.data_root, settings.min_free_disk, self.free_space)
        self.ae = build_ae(settings)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self, port: int | None = None) -> None:
        """Pick up series left receiving, then listen (``port=0``: any free port)."""
        settings = self.settings
        ssl_context = tls_context(settings)
        settings.datastore_dir.mkdir(parents=True, exist_ok=True)
        settings.quarantine_dir.mkdir(parents=True, exist_ok=True)
        resumed = self.tracker.adopt_leftovers()
        if resumed:
            log.info("picked up %d series left receiving by a previous run", resumed)
        if not settings.allowed_aets:
            log.warning("DICOM_OPS_ALLOWED_AETS is empty: accepting associations from any AE title")
        handlers = [
            (evt.EVT_C_STORE, self._handle_store),
            (evt.EVT_C_ECHO, _handle_echo),
            (evt.EVT_ESTABLISHED, self._handle_established),
            (evt.EVT_ACSE_RECV, self._handle_acse_received),
            (evt.EVT_REJECTED, self._handle_rejected),
            (evt.EVT_RELEASED, self._handle_ended),
            (evt.EVT_ABORTED, self._handle_ended),
            (evt.EVT_CONN_CLOSE, self._handle_closed),
        ]
        address = (settings.listener_host, settings.listener_port if port is None else port)
        self._server = self.ae.start_server(address, block=False, evt_handlers=handlers,
                                            ssl_context=ssl_context,
                                            contexts=SharedContexts(self.ae.supported_contexts))
        self.checker.start()
        log.info("listening on %s:%d as %s%s", address[0], self.port, settings.ae_title,
                 " with TLS" if settings.tls_cert else "")

    def stop(self) -> None:
        """Stop listening. Unfinished series stay receiving; the next start resumes them."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server = None
        self.durability.shutdown()
        self.checker.stop()
        log.info("listener stopped")

    # --- event handlers (association threads) -----------------------------------------

    def _handle_established(self, event) -> None:
        requestor = event.assoc.requestor
        with self._counts_lock:
            self._counts[id(event.assoc)] = _AssociationCounts(requestor.ae_title)
        log.debug("association from %s (%s) accepted", requestor.ae_title, requestor.address)

    def _handle_rejected(self, event) -> None:
        requestor = event.assoc.requestor
        allowed = self.settings.allowed_aets
        why = ("calling AE title not in DICOM_OPS_ALLOWED_AETS"
               if allowed and requestor.ae_title not in allowed
               else "too many associations (DICOM_OPS_MAX_ASSOCIATIONS)")
        log.warning("association from %s (%s) rejected: %s", requestor.ae_title,
                    requestor.address, why)

    def _handle_acse_received(self, event) -> None:
        primitive = event.primitive
        if not (isinstance(primitive, A_RELEASE) and primitive.result is None):
            return
        # The sender asked to release: our answer tells it that all it sent is kept, so
        # the association's files must be on disk first (``durability``).
        failed = self.durability.settle(id(event.assoc))
        if failed:
            log.error("association from %s: %d instances could not be made durable; their "
                      "series stays in error until sent again", event.assoc.requestor.ae_title,
                      failed)

    def _handle_closed(self, event) -> None:
        self.durability.forget(id(event.assoc))
        self.tracker.association_closed(id(event.assoc))

    def _handle_ended(self, event) -> None:
        with self._counts_lock:
            counts = self._counts.pop(id(event.assoc), None)
        if counts is not None:
            how = "released" if event.event is evt.EVT_RELEASED else "aborted"
            log.info("association from %s %s: %d stored, %d duplicates, %d refused",
                     counts.calling_aet, how, counts.stored, counts.duplicates, counts.refused)

    def _tally(self, event, what: str, status: int) -> int:
        counts = self._counts.get(id(event.assoc))
        if counts is not None:
            setattr(counts, what, getattr(counts, what) + 1)
        return status

    def _handle_store(self, event) -> int:
        if not self.disk.has_room():
            return self._tally(event, "refused", STATUS_OUT_OF_RESOURCES)
        raw = event.request.DataSet.getbuffer()  # the encoded dataset, never decoded
        try:
            return self._store(event, raw)
        finally:
            raw.release()

    def _store(self, event, raw: memoryview) -> int:
        calling_aet = event.assoc.requestor.ae_title
        try:
            header = header_from_dataset_bytes(raw, event.context.transfer_syntax)
        except UnusableInstance as exc:
            self._quarantine(event, raw, exc.reason)
            return self._tally(event, "refused", exc.status)
        try:
            reservation = self.tracker.reserve(header, id(event.assoc), calling_aet)
        except Exception:
            log_failure(log, "cannot record an instance from %s; refused with 0xA700",
                        calling_aet)
            return self._tally(event, "refused", STATUS_OUT_OF_RESOURCES)
        if reservation is None:
            log.debug("duplicate SOP Instance UID %s stored once", header.sop_uid)
            return self._tally(event, "duplicates", STATUS_SUCCESS)
        meta = file_meta(event.request.AffectedSOPClassUID, header.sop_uid,
                         event.context.transfer_syntax, calling_aet)
        series_id = reservation.active.round.series_id
        try:
            write_intake_file(reservation.path, [meta, raw], sync_file=False)
        except OSError as exc:
            self.tracker.stored(reservation, False)
            log.error("series #%d: cannot write an instance (%s); refused with 0xA700",
                      series_id, describe(exc))
            return self._tally(event, "refused", STATUS_OUT_OF_RESOURCES)
        # In flight until synced: the round is not published before its files are durable.
        self.durability.sync_later(id(event.assoc), reservation.path, f"series #{series_id}",
                                   lambda ok: self.tracker.synced(reservation, ok))
        return self._tally(event, "stored", STATUS_SUCCESS)

    def _quarantine(self, event, raw: memoryview, reason: str) -> None:
        request = event.request
        calling_aet = event.assoc.requestor.ae_title
        details = {
            "source": "scp",
            "calling_aet": calling_aet,
            "peer": event.assoc.requestor.address,
            "transfer_syntax": event.context.transfer_syntax,
            "bytes": len(raw),
        }
        meta = file_meta(request.AffectedSOPClassUID, request.AffectedSOPInstanceUID,
                         event.context.transfer_syntax, calling_aet)
        try:
            path = quarantine(self.settings.quarantine_dir, [meta, raw], reason, details)
            with session_scope(self.engine) as session:
                record_event(session, "quarantined", f"{path.name}: {reason} (from {calling_aet})",
                             actor="listener")
        except Exception:
            log_failure(log, "could not quarantine an instance from %s (%s)", calling_aet,
                        reason)


def _handle_echo(event) -> int:
    log.debug("C-ECHO from %s", event.assoc.requestor.ae_title)
    return STATUS_SUCCESS


def build_ae(settings: Settings) -> AE:
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_pdu_size = MAX_PDU_SIZE
    ae.maximum_associations = settings.max_associations
    if settings.allowed_aets:
        ae.require_calling_aet = list(settings.allowed_aets)
    syntaxes = transfer_syntaxes()
    for sop_class in storage_sop_classes():
        ae.add_supported_context(sop_class, syntaxes)
    ae.add_supported_context(Verification)
    return ae


class ListenerConfigError(RuntimeError):
    """The listener cannot start as configured; the message says which setting."""


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Server-side TLS from DICOM_OPS_TLS_CERT/KEY (TLS 1.2 or later), or ``None``."""
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ListenerConfigError(
            f"cannot load DICOM_OPS_TLS_CERT/DICOM_OPS_TLS_KEY ({describe(exc)})") from exc
    return context

