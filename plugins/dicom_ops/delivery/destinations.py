"""Delivery destinations: every node in ``DICOM_OPS_DESTINATIONS`` is a DICOM node
(C-STORE, ``cstore``) or a DICOMweb service (STOW-RS, ``dicomweb``); this is the one
place that tells them apart. Which kind a destination is comes from its Airflow
connection's type (``dicom`` or ``dicomweb``), read by ``dicom_ops.airflow.hooks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dicom_ops.delivery.cstore import DicomNode, send_files
from dicom_ops.delivery.dicomweb import DicomWebNode, stow_files

Destination = DicomNode | DicomWebNode


def protocol(destination: Destination) -> str:
    """``C-STORE`` or ``STOW-RS``: what the audit log and the job's stage say."""
    return "STOW-RS" if isinstance(destination, DicomWebNode) else "C-STORE"


def send_to(destination: Destination, paths: Sequence[Path], calling_aet: str) -> int:
    """Send ``paths`` to ``destination``; returns the attempts it took. Raises
    ``StoreFailed`` or ``DicomWebFailed`` when the destination did not store them all."""
    if isinstance(destination, DicomWebNode):
        return stow_files(paths, destination).attempts
    return send_files(paths, destination, calling_aet).attempts
