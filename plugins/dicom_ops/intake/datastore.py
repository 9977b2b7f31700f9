"""Folder layout of the datastore.

``<datastore>/<StudyInstanceUID>/<SeriesInstanceUID>/`` holds one finished series,
one file per SOP instance, named ``<SOPInstanceUID>.dcm``. While instances arrive
they go to ``<SeriesInstanceUID>.tmp-<n>/`` beside it (a new ``n`` for every
receiving round, never reused while the old one exists); when the round is
finished its folder is renamed to the final name, or, if the series was already
there (it was sent again), its new files are moved in, never over a file that
is already there.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from dicom_ops.files import fsync_directory, move_without_overwrite, remove_partial_files
from dicom_ops.intake.finished import UNFINISHED_SUFFIX
from dicom_ops.intake.storage import DICOM_SUFFIX
from dicom_ops.uids import is_valid_uid

# <series>.tmp-<n>: unfinished by the sendit rule, so nothing takes a round for a finished folder
ROUND_MARK = UNFINISHED_SUFFIX + "-"


def series_folder(datastore: Path, study_uid: str, series_uid: str) -> Path:
    """Where a finished series lives; refuses anything but valid UIDs as path parts."""
    if not (is_valid_uid(study_uid) and is_valid_uid(series_uid)):
        raise ValueError("study and series UIDs must be valid DICOM UIDs")
    return datastore / study_uid / series_uid


def is_round_folder(path: Path) -> bool:
    return ROUND_MARK in path.name


def new_round_folder(final: Path) -> Path:
    """Create ``<final>.tmp-<n>`` with the smallest ``n`` not in use."""
    final.parent.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        candidate = final.with_name(f"{final.name}{ROUND_MARK}{number}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1


def instance_uids(folder: Path) -> set[str]:
    """SOP Instance UIDs of the instances stored in ``folder`` (empty if it does not exist)."""
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return set()
    with entries:
        return {e.name[: -len(DICOM_SUFFIX)] for e in entries
                if e.name.endswith(DICOM_SUFFIX) and not e.name.startswith(".")}


def count_instances(folder: Path) -> int:
    return len(instance_uids(folder))


def finish_round(round_folder: Path, final: Path) -> int:
    """Publish a round's files under ``final``; returns how many instances ``final`` holds.

    Partial files of interrupted writes (never acknowledged to the sender) are dropped.
    """
    if round_folder.exists():
        remove_partial_files(round_folder)
        if not _rename_if_absent(round_folder, final):
            for entry in os.scandir(round_folder):
                move_without_overwrite(Path(entry.path), final / entry.name)
            round_folder.rmdir()
        fsync_directory(final)
        fsync_directory(final.parent)
    return count_instances(final)


def _rename_if_absent(source: Path, final: Path) -> bool:
    if final.exists():
        return False
    try:
        os.rename(source, final)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):  # appeared meanwhile
            return False
        raise
    return True
