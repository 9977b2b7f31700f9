"""Files on disk: atomic writes, hard links with a copy fallback, free space, UIDs as names.

Nothing here knows about series or the DB. Every file we create appears under its
final name only once it is complete (temporary name in the same directory, fsync,
rename), so a reader never sees half a file.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

from dicom_ops.files import free_disk_bytes, fsync_directory  # noqa: F401 (re-exported)

UID_MAX_LENGTH = 64
PART_SUFFIX = ".part"
DICOM_SUFFIX = ".dcm"

_UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")
_part_numbers = itertools.count(1)
_part_lock = threading.Lock()


def is_valid_uid(value: object) -> bool:
    """A DICOM UID: digits in dot-separated components, 1-64 characters.

    Only such values ever become file or folder names, so no ``/``, ``..`` or
    empty component can reach a path.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= UID_MAX_LENGTH
        and _UID_PATTERN.fullmatch(value) is not None
    )


def instance_filename(sop_instance_uid: str) -> str:
    """File name of one instance in a series folder (the UID must be valid)."""
    if not is_valid_uid(sop_instance_uid):
        raise ValueError("not a valid SOP Instance UID")
    return sop_instance_uid + DICOM_SUFFIX


def is_unfinished_name(name: str) -> bool:
    """The sendit rule: a name whose last suffix starts with ``.tmp`` is still being written."""
    return os.path.splitext(name)[1].startswith(".tmp")


def _part_path(final: Path) -> Path:
    with _part_lock:
        number = next(_part_numbers)
    return final.with_name(f".{final.name}.{os.getpid()}-{number}{PART_SUFFIX}")


def write_atomically(final: Path, chunks: Iterable[bytes | memoryview], *,
                     overwrite: bool = True, mode: int = 0o640) -> bool:
    """Write ``chunks`` to ``final`` through a temporary name, fsync, then rename.

    With ``overwrite=False`` an existing ``final`` is kept and ``False`` returned
    (the new bytes are dropped): the first copy of a file wins.
    """
    part = _part_path(final)
    descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb", buffering=0) as handle:
            for chunk in chunks:
                handle.write(chunk)
            os.fsync(handle.fileno())
        return _publish(part, final, overwrite=overwrite)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def link_or_copy_atomically(source: Path, final: Path) -> bool:
    """Give ``final`` the content of ``source`` (hard link when possible, else a copy).

    ``source`` is left alone. An existing ``final`` is kept (returns ``False``).
    """
    if final.exists():
        return False
    part = _part_path(final)
    try:
        try:
            os.link(source, part)
        except OSError:  # another filesystem, or one without hard links
            shutil.copyfile(source, part)
            with open(part, "rb") as handle:
                os.fsync(handle.fileno())
        return _publish(part, final, overwrite=False)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def move_without_overwrite(source: Path, final: Path) -> bool:
    """Move ``source`` to ``final`` unless ``final`` exists (then ``source`` is removed)."""
    published = _publish(source, final, overwrite=False)
    if not published:
        source.unlink(missing_ok=True)
    return published


def _publish(part: Path, final: Path, *, overwrite: bool) -> bool:
    if overwrite:
        os.replace(part, final)
        return True
    try:
        os.link(part, final)  # fails if final exists: the check and the write are one step
    except FileExistsError:
        part.unlink(missing_ok=True)
        return False
    except OSError:  # no hard links here: a plain check-then-rename
        if final.exists():
            part.unlink(missing_ok=True)
            return False
        os.replace(part, final)
        return True
    part.unlink()
    return True


def remove_partial_files(folder: Path) -> int:
    """Delete temporary files left by an interrupted write; returns how many."""
    removed = 0
    for entry in os.scandir(folder):
        if entry.name.startswith(".") and entry.name.endswith(PART_SUFFIX):
            os.unlink(entry.path)
            removed += 1
    return removed
