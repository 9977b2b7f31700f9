"""Putting an RTSTRUCT where people find it (the folder its CT came from), or, when it
was rejected, aside in the quarantine with a note saying why.

Writes are atomic and never replace a different file (``dicom_ops.files``: a hidden
temporary file, fsynced, hard-linked to its final name, which fails if the name is
taken, then the folder fsynced). A reader (the TPS import, a folder watcher) sees
either no file or the whole file. Delivery's own rule on top: the same bytes
delivered again (a retried task) are a no-op; different bytes under an existing
name are an error.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, RTStructureSetStorage

from dicom_ops.delivery.part10 import encode_part10
from dicom_ops.delivery.reidentify import reidentify
from dicom_ops.delivery.validation import RtstructRejected, instance_uid_elements
from dicom_ops.files import write_atomically
from dicom_ops.uids import new_uid

log = logging.getLogger(__name__)

FILE_MODE = 0o644  # the TPS import often runs as another user


class DeliveryError(RuntimeError):
    """The RTSTRUCT could not be put in place; the message says why, without patient values."""


def rtstruct_filename(ds: Dataset) -> str:
    """``RS.<SOPInstanceUID>.dcm``; the UID is checked so it cannot be a path."""
    uid = str(ds.get("SOPInstanceUID", ""))
    if not UID(uid).is_valid:
        raise DeliveryError("the RTSTRUCT's SOP Instance UID is not a valid UID; "
                            "refusing to use it as a file name")
    return f"RS.{uid}.dcm"


def write_new_file(path: Path, data: bytes) -> Path:
    """Write ``data`` as ``path``, whole or not at all, never replacing a different file."""
    if write_atomically(path, data, overwrite=False, mode=FILE_MODE):
        return path
    return _existing_if_identical(path, data)


def _existing_if_identical(path: Path, data: bytes) -> Path:
    if path.read_bytes() == data:
        log.info("%s is already in place with the same content", path.name)
        return path
    raise DeliveryError(f"{path.name} already exists with different content; not overwritten")


def deliver_to_origin(ds: Dataset, origin_folder: Path) -> Path:
    """Write the re-identified RTSTRUCT ``ds`` into ``origin_folder`` as ``RS.<uid>.dcm``.

    Refuses when the folder is gone or holds images of another patient (a folder
    reused or a wrong path on record): contours must land next to their own CT.
    """
    if ds.get("SOPClassUID") != RTStructureSetStorage or ds.get("Modality") != "RTSTRUCT":
        raise DeliveryError("only RT Structure Sets are delivered to origin folders")
    folder = Path(origin_folder)
    if not folder.is_dir():
        log.debug("origin folder missing: %s", folder)
        raise DeliveryError("the series' origin folder no longer exists; nothing delivered")
    check_folder_is_this_patients(folder, str(ds.get("PatientID", "")))
    path = write_new_file(folder / rtstruct_filename(ds), encode_part10(ds))
    log.info("RTSTRUCT delivered to the origin folder as %s", path.name)
    return path


def _headers(folder: Path, keywords: list[str]) -> Iterator[Dataset]:
    """The named attributes of each DICOM file directly in ``folder``, in name order; no
    pixel data is read, files that are not DICOM (or hidden) are skipped."""
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            yield dcmread(path, stop_before_pixels=True, specific_tags=keywords)
        except (InvalidDicomError, OSError, EOFError, ValueError):
            continue


def check_folder_is_this_patients(folder: Path, patient_id: str) -> None:
    """Every DICOM file directly in ``folder`` has ``patient_id`` (non-DICOM files ignored)."""
    others = sum(1 for header in _headers(folder, ["PatientID"])
                 if str(header.get("PatientID", "")) != patient_id)
    if others:
        raise DeliveryError(f"the origin folder holds {others} DICOM file(s) of another "
                            "PatientID; nothing delivered")


def ct_position_reference_indicators(folder: Path, uid_map: Mapping[str, tuple[str, str]]
                                     ) -> dict[str, str]:
    """PositionReferenceIndicator by original FrameOfReferenceUID, from the first header
    in the origin folder of each of the job's frames (the CT the job was made from).

    Read at delivery rather than kept at preparation: the CT is still in the folder (the
    delivery needs the folder and reads its headers anyway), and it works for jobs
    prepared before this was needed. A frame with no image left in the folder is not in
    the result (the RTSTRUCT then gets the server's value, or an empty one: Type 2).
    """
    frames = {original for original, kind in uid_map.values() if kind == "frame_of_reference"}
    found: dict[str, str] = {}
    for header in _headers(Path(folder), ["FrameOfReferenceUID", "PositionReferenceIndicator"]):
        frame = str(header.get("FrameOfReferenceUID", ""))
        if frame in frames and frame not in found:
            found[frame] = str(header.get("PositionReferenceIndicator") or "")
            if len(found) == len(frames):
                break
    return found


def quarantine_rtstruct(raw: bytes | Path, quarantine_dir: Path, reason: str, job_id: int, *,
                        now: datetime | None = None) -> Path:
    """Keep a rejected RTSTRUCT for inspection: ``<quarantine>/job-<id>/rtstruct-<time>-<sha>.dcm``
    plus ``….reason.txt``. Returns the path of the kept file."""
    data = Path(raw).read_bytes() if isinstance(raw, (str, os.PathLike)) else bytes(raw)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    digest = hashlib.sha256(data).hexdigest()
    folder = Path(quarantine_dir) / f"job-{job_id}"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"rtstruct-{moment:%Y%m%dT%H%M%SZ}-{digest[:12]}"
    kept = write_new_file(folder / f"{stem}.dcm", data)
    note = (f"job: {job_id}\n"
            f"quarantined: {moment.isoformat(timespec='seconds')}\n"
            f"reason: {reason}\n"
            f"file: {kept.name} ({len(data)} bytes, sha256 {digest})\n"
            "This RTSTRUCT was not delivered anywhere. See the README, "
            "'Delivery and re-identification', for what to do.\n")
    write_new_file(folder / f"{stem}.reason.txt", note.encode())
    log.warning("job %s: RTSTRUCT quarantined as %s: %s", job_id, kept.name, reason)
    return kept


def deliver_rtstruct(
    raw: bytes | Path,
    origin_folder: Path,
    *,
    job_id: int,
    uid_map: Mapping[str, tuple[str, str]],
    subject: Mapping[str, str],
    pseudonym: str,
    uid_root: str,
    quarantine_dir: Path,
) -> Path:
    """The import step's core: parse, validate, re-identify (with the Frame of Reference
    module completed from the CT in the origin folder), write into the origin folder.

    A rejected file goes to the quarantine (with its reason) and ``RtstructRejected``
    is raised, carrying ``quarantined_path``; nothing reaches the origin folder. The
    new UIDs derive from the job and the file's checksum, so running this again for
    the same download writes the same file name (and finds it already there).
    """
    if isinstance(raw, (str, os.PathLike)):
        raw = Path(raw).read_bytes()
    try:
        rtstruct = parse_rtstruct(raw)
        seed = f"dicom-ops:{job_id}:{hashlib.sha256(raw).hexdigest()}"
        reidentified = reidentify(
            rtstruct, uid_map, subject, pseudonym=pseudonym,
            new_sop_instance_uid=new_uid(uid_root, seed=f"{seed}:sop"),
            new_series_instance_uid=new_uid(uid_root, seed=f"{seed}:series"),
            position_reference_indicators=ct_position_reference_indicators(origin_folder,
                                                                           uid_map))
    except RtstructRejected as rejected:
        rejected.quarantined_path = quarantine_rtstruct(raw, quarantine_dir, rejected.reason,
                                                        job_id)
        raise
    return deliver_to_origin(reidentified, origin_folder)


def parse_rtstruct(raw: bytes) -> Dataset:
    """The dataset in ``raw``; its sequences are decoded here, so a damaged file is
    rejected now rather than failing halfway through re-identification."""
    try:
        ds = dcmread(io.BytesIO(raw))
        for _element in instance_uid_elements(ds):
            pass
    except (InvalidDicomError, EOFError, ValueError, KeyError, OSError, struct.error) as exc:
        raise RtstructRejected(f"not a readable DICOM file ({type(exc).__name__})") from exc
    return ds
