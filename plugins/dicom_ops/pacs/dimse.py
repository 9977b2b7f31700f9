"""Query/retrieve over DIMSE with pynetdicom: C-ECHO, C-FIND (study root, study then
series level), C-MOVE to our listener's AE title, or C-GET into a folder.

Every association goes through ``_associate``: TLS from the node, the same
timeouts, and failures described as for C-STORE (``delivery.cstore.
association_failure``), so a rejected AE title reads the same everywhere.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicom_ops.delivery.cstore import DicomNode, PeerReplies, association_failure, check_ae_title
from dicom_ops.intake.storage import write_intake_file
from dicom_ops.pacs.errors import PacsError
from dicom_ops.pacs.found import (
    FoundSeries,
    FoundStudy,
    series_from_identifier,
    study_from_identifier,
)

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30.0
# A C-MOVE or C-GET of a big series can take minutes between two responses.
RETRIEVE_TIMEOUT_SECONDS = 600.0
PENDING = (0xFF00, 0xFF01)
# The planning images C-GET accepts (C-GET needs each storage class negotiated up front).
GET_STORAGE_CLASSES = (CTImageStorage, EnhancedCTImageStorage, MRImageStorage,
                       EnhancedMRImageStorage, PositronEmissionTomographyImageStorage)
_STATUS_HINTS = {
    0xA801: "the PACS does not know our AE title as a move destination: declare it there "
            "(AE title, host and port of our listener)",
    0xA701: "the PACS is out of resources", 0xA702: "the PACS is out of resources",
    0xA900: "the PACS says our identifier does not match the SOP class",
    0xFE00: "the retrieve was cancelled",
}


@dataclass(frozen=True)
class RetrieveOutcome:
    """What one C-MOVE / C-GET / WADO-RS of one series did."""

    completed: int
    failed: int
    warning: int
    status: int  # the final DIMSE status (0x0000 success, 0xB000 some failed...)
    detail: str = ""

    @property
    def partial(self) -> bool:
        return self.failed > 0 or self.status == 0xB000


def describe(status: int) -> str:
    hint = _STATUS_HINTS.get(status)
    return f"status 0x{status:04X}" + (f" ({hint})" if hint else "")


@contextmanager
def _associate(node: DicomNode, calling_aet: str, contexts, *, timeout: float = TIMEOUT_SECONDS,
               roles=(), handlers=()) -> Iterator:
    calling_aet = check_ae_title(calling_aet, "calling AE title")
    ae = AE(ae_title=calling_aet)
    ae.connection_timeout = ae.acse_timeout = ae.network_timeout = TIMEOUT_SECONDS
    ae.dimse_timeout = timeout
    for context in contexts:
        if isinstance(context, tuple):
            ae.add_requested_context(*context)
        else:
            ae.add_requested_context(context)
    heard = PeerReplies()
    assoc = ae.associate(node.host, node.port, ae_title=node.called_aet,
                         tls_args=node.tls_args(), ext_neg=list(roles) or None,
                         evt_handlers=[(evt.EVT_CONN_OPEN, heard.on_connection),
                                       (evt.EVT_PDU_RECV, heard.on_pdu), *handlers])
    if not assoc.is_established:
        failure = association_failure(assoc, calling_aet, heard, TIMEOUT_SECONDS,
                                      tls=bool(node.tls))
        raise PacsError(f"{node}: {failure.cause}", transient=failure.transient)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def echo(node: DicomNode, calling_aet: str) -> None:
    """C-ECHO ``node``; raises ``PacsError`` naming the node and what went wrong."""
    with _associate(node, calling_aet, [Verification]) as assoc:
        status = assoc.send_c_echo()
    if "Status" not in status:
        raise PacsError(f"{node}: no answer to C-ECHO within {TIMEOUT_SECONDS:g} s")
    if int(status.Status) != 0x0000:
        raise PacsError(f"{node}: C-ECHO answered {describe(int(status.Status))}")


def _find(assoc, node: DicomNode, identifier: Dataset, what: str) -> Iterator[Dataset]:
    for status, answer in assoc.send_c_find(identifier,
                                            StudyRootQueryRetrieveInformationModelFind):
        if "Status" not in status:
            raise PacsError(f"{node}: association aborted or no answer during the {what} "
                            "C-FIND")
        code = int(status.Status)
        if code in PENDING:
            if answer is not None:
                yield answer
        elif code != 0x0000:
            raise PacsError(f"{node}: {what} C-FIND failed with {describe(code)}",
                            transient=code in (0xA700, 0xA701, 0xA702))


def find_studies(node: DicomNode, calling_aet: str, study_date_key: str) -> list[FoundStudy]:
    """Every study in the date range (``20261101-20261202``, either end open)."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = ""
    identifier.StudyDate = study_date_key if study_date_key != "-" else ""
    identifier.StudyTime = ""
    identifier.StudyDescription = ""
    with _associate(node, calling_aet, [StudyRootQueryRetrieveInformationModelFind]) as assoc:
        return [study_from_identifier(answer)
                for answer in _find(assoc, node, identifier, "study-level")]


def find_series(node: DicomNode, calling_aet: str,
                studies: list[FoundStudy]) -> Iterator[list[FoundSeries]]:
    """The series of each study in turn (one association for all), as lists per study,
    so the caller can stop once it has enough."""
    with _associate(node, calling_aet, [StudyRootQueryRetrieveInformationModelFind]) as assoc:
        for study in studies:
            identifier = Dataset()
            identifier.QueryRetrieveLevel = "SERIES"
            identifier.StudyInstanceUID = study.study_uid
            identifier.SeriesInstanceUID = ""
            identifier.Modality = ""
            identifier.SeriesNumber = ""
            identifier.SeriesDescription = ""
            identifier.StationName = ""
            identifier.NumberOfSeriesRelatedInstances = ""
            yield [series_from_identifier(study, answer)
                   for answer in _find(assoc, node, identifier, "series-level")]


def _series_identifier(series: FoundSeries) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "SERIES"
    identifier.StudyInstanceUID = series.study_uid
    identifier.SeriesInstanceUID = series.series_uid
    return identifier


def _outcome(responses, node: DicomNode, what: str) -> RetrieveOutcome:
    last = None
    for status, _identifier in responses:
        if "Status" not in status:
            raise PacsError(f"{node}: association aborted or no answer during {what}")
        last = status
        if int(status.Status) not in PENDING:
            break
    if last is None:
        raise PacsError(f"{node}: no answer to {what}")
    code = int(last.Status)
    counts = {key: int(last.get(f"NumberOf{key}Suboperations", 0) or 0)
              for key in ("Completed", "Failed", "Warning")}
    detail = "" if code == 0x0000 else f"{what} ended with {describe(code)}"
    return RetrieveOutcome(counts["Completed"], counts["Failed"], counts["Warning"], code, detail)


def move_series(node: DicomNode, calling_aet: str, series: FoundSeries,
                destination_aet: str) -> RetrieveOutcome:
    """C-MOVE one series to ``destination_aet`` (our listener); the PACS opens its own
    association to it. Raises ``PacsError`` when the PACS refuses outright."""
    contexts = [StudyRootQueryRetrieveInformationModelMove]
    with _associate(node, calling_aet, contexts, timeout=RETRIEVE_TIMEOUT_SECONDS) as assoc:
        outcome = _outcome(assoc.send_c_move(_series_identifier(series), destination_aet,
                                             StudyRootQueryRetrieveInformationModelMove),
                           node, "C-MOVE")
    if outcome.status not in (0x0000, 0xB000) and not outcome.completed:
        raise PacsError(f"{node}: C-MOVE refused with {describe(outcome.status)}",
                        transient=outcome.status != 0xA801)
    return outcome


def get_series(node: DicomNode, calling_aet: str, series: FoundSeries,
               folder: Path) -> RetrieveOutcome:
    """C-GET one series into ``folder`` (for a PACS that cannot connect back to us)."""
    folder.mkdir(parents=True, exist_ok=True)
    numbers = itertools.count(1)

    def store(event) -> int:
        try:  # atomically, with intake's mode: these are patient files
            write_intake_file(folder / f"{next(numbers):06d}.dcm", [event.encoded_dataset()])
        except OSError:
            return 0xA700  # out of resources: the PACS counts it failed, the next run asks again
        return 0x0000

    contexts = [StudyRootQueryRetrieveInformationModelGet,
                *[(sop_class, ALL_TRANSFER_SYNTAXES) for sop_class in GET_STORAGE_CLASSES]]
    roles = [build_role(sop_class, scp_role=True) for sop_class in GET_STORAGE_CLASSES]
    with _associate(node, calling_aet, contexts, timeout=RETRIEVE_TIMEOUT_SECONDS, roles=roles,
                    handlers=[(evt.EVT_C_STORE, store)]) as assoc:
        outcome = _outcome(assoc.send_c_get(_series_identifier(series),
                                            StudyRootQueryRetrieveInformationModelGet),
                           node, "C-GET")
    if outcome.status not in (0x0000, 0xB000) and not outcome.completed:
        raise PacsError(f"{node}: C-GET refused with {describe(outcome.status)}")
    return outcome
