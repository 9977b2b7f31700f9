"""Intake's files: instances named by their UID, written the way intake writes them.

The mechanism (temporary name, fsync, rename or hard link) is ``dicom_ops.files``;
what is intake's own is the policy: instance files are readable by the owner and
the group only, and a folder is not fsynced after every instance, because a round's
folder is fsynced once when it is published (``datastore.finish_round``), which
keeps the listener's C-STORE handler fast. For the same reason the listener leaves
each file's own fsync to ``intake.durability`` (``sync_file=False``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dicom_ops.files import write_atomically
from dicom_ops.uids import is_valid_uid

DICOM_SUFFIX = ".dcm"
FILE_MODE = 0o640  # patient data: owner and group (the pipeline's workers) only


def instance_filename(sop_instance_uid: str) -> str:
    """File name of one instance in a series folder (the UID must be valid)."""
    if not is_valid_uid(sop_instance_uid):
        raise ValueError("not a valid SOP Instance UID")
    return sop_instance_uid + DICOM_SUFFIX


def write_intake_file(path: Path, chunks: Iterable[bytes | memoryview], *,
                      sync_file: bool = True) -> bool:
    """Write an instance (or a quarantined file) atomically with intake's mode; the
    caller's folder is fsynced when it is published, not here."""
    return write_atomically(path, chunks, mode=FILE_MODE, sync_directory=False,
                            sync_file=sync_file)
