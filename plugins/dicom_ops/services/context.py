"""What a worker entry gets: one ``WorkerContext`` per job and item.

- ``folder``: the item's folder (the series folder; for a study, the folder holding its
  series; for a delivered RTSTRUCT, the CT's origin folder). Read-only by contract:
  services run on identified data, in place, and must never change it.
- ``output_folder``: the job's own folder, empty at start, under
  ``<data root>/results/services/<service>/item-<id>/<job>/``.
- ``headers``: the first instance's header (pydicom Dataset, no pixel data).
- ``params``: the definition's params merged with the registry callback's.
- ``log``: a logger that never writes patient identifiers at INFO or above (the item's
  names, IDs, birth date, accession number and every UID-like token are replaced); DEBUG
  is left as written, as everywhere in dicom-ops.
- ``deliver(path)``: put a DICOM object the job made where RTSTRUCTs go (the origin
  folder, then ``DICOM_OPS_DESTINATIONS`` by C-STORE); ``dicom_node(conn_id)``: a DICOM
  destination from its Airflow connection, for services that send by themselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from dicom_ops.delivery.cstore import DicomNode

_UID_LIKE = re.compile(r"\d+(?:\.\d+){2,}")
MIN_TOKEN = 3  # shorter name parts and IDs are not replaced (as in the egress check)


def identifiers_of(headers: Dataset) -> list[str]:
    """The patient values a log line must not carry, longest first."""
    values: set[str] = set()
    name = str(headers.get("PatientName", "") or "")
    values.update(part for part in re.split(r"[\^= ]+", name) if len(part) >= MIN_TOKEN)
    for keyword in ("PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs"):
        raw = headers.get(keyword)
        for value in (raw if isinstance(raw, (list, tuple)) else [raw]):
            if value and len(str(value).strip()) >= MIN_TOKEN:
                values.add(str(value).strip())
    return sorted(values, key=len, reverse=True)


def redact(text: str, identifiers: Iterable[str]) -> str:
    for value in identifiers:
        text = re.sub(re.escape(value), "<redacted>", text, flags=re.IGNORECASE)
    return _UID_LIKE.sub("<uid>", text)


class PhiSafeLogger(logging.LoggerAdapter):
    """A service's logger: at INFO and above the message is redacted after formatting."""

    def __init__(self, logger: logging.Logger, identifiers: Sequence[str]) -> None:
        super().__init__(logger, {})
        self.identifiers = list(identifiers)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level >= logging.INFO and self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            if kwargs.pop("exc_info", None):
                kwargs.pop("stack_info", None)
                self.logger.debug(text, exc_info=True)  # the traceback only at DEBUG
            super().log(level, "%s", redact(text, self.identifiers), **kwargs)
            return
        super().log(level, msg, *args, **kwargs)

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=True, **kwargs)


@dataclass
class WorkerContext:
    service: str
    job: str
    event: str
    item_id: int
    folder: Path
    series_folders: tuple[Path, ...]
    output_folder: Path
    headers: Dataset
    params: dict[str, Any]
    log: PhiSafeLogger
    ae_title: str
    rtstruct: Path | None = None  # rtstruct_delivered: the delivered file
    _deliver: Callable[[Path, Sequence[str] | None], Path] | None = field(default=None,
                                                                          repr=False)
    _nodes: Callable[[str], DicomNode] | None = field(default=None, repr=False)

    def deliver(self, path: Path | str, destinations: Sequence[str] | None = None) -> Path:
        """Deliver a DICOM file of the output folder like an RTSTRUCT: into the origin
        folder, then by C-STORE to ``destinations`` (connection ids; default
        ``DICOM_OPS_DESTINATIONS``). Returns where it landed."""
        if self._deliver is None:
            raise RuntimeError("delivery is not available in this context")
        return self._deliver(Path(path), destinations)

    def dicom_node(self, conn_id: str) -> DicomNode:
        if self._nodes is None:
            raise RuntimeError("no DICOM connections in this context")
        return self._nodes(conn_id)

    def series_files(self) -> list[Path]:
        """The item's DICOM files (every series of a study), in name order."""
        return [path for folder in self.series_folders for path in sorted(folder.iterdir())
                if path.is_file() and not path.name.startswith(".")
                and not path.name.startswith("RS.")]


def merged_params(defined: Mapping[str, Any], added: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**defined, **(added or {})}
