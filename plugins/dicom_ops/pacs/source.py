"""A PACS as the query sees it: a DICOM node (DIMSE: C-FIND, then C-MOVE or C-GET) or a
DICOMweb service (QIDO-RS, WADO-RS), behind the same four verbs. This is the one place
that tells the kinds apart."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dicom_ops.delivery.connections import ConnectionFields
from dicom_ops.delivery.connections import node as connection_node
from dicom_ops.delivery.cstore import DicomNode
from dicom_ops.delivery.dicomweb import DicomWebNode
from dicom_ops.pacs import dicomweb, dimse
from dicom_ops.pacs.dimse import RetrieveOutcome
from dicom_ops.pacs.found import FoundSeries, FoundStudy

Retrieve = Literal["move", "get"]


@dataclass(frozen=True)
class PacsSource:
    """``name``: the Airflow connection id. ``retrieve``: C-MOVE to our listener (the
    default), or C-GET for a PACS that cannot open an association back to us (DIMSE
    only; a DICOMweb PACS is always retrieved from with WADO-RS)."""

    name: str
    node: DicomNode | DicomWebNode
    retrieve: Retrieve = "move"

    def __post_init__(self) -> None:
        if self.retrieve not in ("move", "get"):
            raise ValueError(f"PACS {self.name!r}: retrieve must be 'move' or 'get', "
                             f"not {self.retrieve!r}")

    @property
    def is_dicomweb(self) -> bool:
        return isinstance(self.node, DicomWebNode)

    @property
    def method(self) -> str:
        """How series come back: ``C-MOVE``, ``C-GET`` or ``WADO-RS``."""
        return "WADO-RS" if self.is_dicomweb else f"C-{self.retrieve.upper()}"

    @property
    def arrives_through_listener(self) -> bool:
        """C-MOVE sends the series to our listener; the others fetch into a folder."""
        return not self.is_dicomweb and self.retrieve == "move"

    def __str__(self) -> str:
        return f"{self.name} ({self.node})"

    def echo(self, calling_aet: str) -> None:
        if isinstance(self.node, DicomWebNode):
            dicomweb.echo(self.node)
        else:
            dimse.echo(self.node, calling_aet)

    def find_studies(self, calling_aet: str, study_date_key: str) -> list[FoundStudy]:
        if isinstance(self.node, DicomWebNode):
            return dicomweb.find_studies(self.node, study_date_key)
        return dimse.find_studies(self.node, calling_aet, study_date_key)

    def find_series(self, calling_aet: str,
                    studies: list[FoundStudy]) -> Iterator[list[FoundSeries]]:
        if isinstance(self.node, DicomWebNode):
            return dicomweb.find_series(self.node, studies)
        return dimse.find_series(self.node, calling_aet, studies)

    def fetch(self, calling_aet: str, series: FoundSeries, *, listener_aet: str,
              folder: Path) -> RetrieveOutcome:
        """Retrieve one series: to our listener (C-MOVE) or into ``folder``."""
        if isinstance(self.node, DicomWebNode):
            return dicomweb.retrieve_series(self.node, series, folder)
        if self.retrieve == "get":
            return dimse.get_series(self.node, calling_aet, series, folder)
        return dimse.move_series(self.node, calling_aet, series, listener_aet)


def source_from_fields(fields: ConnectionFields) -> PacsSource:
    """A PACS from its connection: ``dicom`` (DIMSE) or ``dicomweb``; extra ``retrieve``
    = ``move`` (default) or ``get``."""
    retrieve = str(fields.extra.get("retrieve", "move")).strip().lower()
    if retrieve not in ("move", "get"):
        raise ValueError(f"{fields.where}: extra 'retrieve' must be 'move' or 'get', "
                         f"not {retrieve!r}")
    return PacsSource(fields.conn_id, connection_node(fields), retrieve)  # type: ignore[arg-type]
