"""Disk facts and moves for cleanup: sizes, ages, free space, and moving a folder aside.

Cleanup never deletes a folder where it stands. It first renames it, in one atomic
step, into the area's ``.cleanup-trash/`` folder (same filesystem), re-checks, and
only then deletes it. A writer that still held the old path fails loudly instead
of writing into something half deleted, and a trash folder left by an interrupted
run is finished off by the next one.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from dicom_ops.files import free_disk_bytes as free_bytes  # noqa: F401 (the probe cleanup uses)

TRASH_NAME = ".cleanup-trash"

# Free bytes on the filesystem holding a path. Injectable: tests cannot fill a disk.
FreeSpaceProbe = Callable[[Path], int]

# Snapshot of a folder's files: relative name -> (size, mtime in ns).
Snapshot = dict[str, tuple[int, int]]


class CannotMoveAside(OSError):
    """The item could not be renamed into the trash (gone, or another filesystem)."""


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (or of the file itself); 0 if it is gone."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return info.st_size
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def newest_mtime(path: Path) -> datetime | None:
    """When anything under ``path`` (the folder itself included) last changed; None if gone."""
    try:
        newest = path.lstat().st_mtime
    except FileNotFoundError:
        return None
    if path.is_dir() and not path.is_symlink():
        for root, dirs, names in os.walk(path):
            for name in (*dirs, *names):
                try:
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                except FileNotFoundError:
                    continue
    return datetime.fromtimestamp(newest, UTC)


def snapshot(folder: Path) -> Snapshot:
    """Every file under ``folder`` with its size and mtime, to notice a write later."""
    found: Snapshot = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            full = os.path.join(root, name)
            try:
                info = os.lstat(full)
            except FileNotFoundError:
                continue
            found[os.path.relpath(full, folder)] = (info.st_size, info.st_mtime_ns)
    return found


def children(folder: Path) -> list[Path]:
    """The entries of an area folder, sorted, without its trash; [] if it does not exist."""
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.name != TRASH_NAME)
    except FileNotFoundError:
        return []


def real(path: Path) -> Path:
    """``path`` with symlinks resolved: what cleanup compares and checks containment on."""
    return Path(os.path.realpath(path))


def is_inside(path: Path, root: Path) -> bool:
    return real(path).is_relative_to(real(root))


def same_path(stored: str | None, path: Path) -> bool:
    """Whether a path stored in the app DB names the same place on disk as ``path``."""
    return stored is not None and real(Path(stored)) == real(path)


def trash_dir(area_root: Path) -> Path:
    return area_root / TRASH_NAME


def move_aside(path: Path, area_root: Path, tag: str) -> Path:
    """Rename ``path`` into ``<area_root>/.cleanup-trash/<tag>-<random>``; returns the new path.

    One rename: whoever still uses the old path finds nothing there from now on.
    """
    trash = trash_dir(area_root)
    trash.mkdir(parents=True, exist_ok=True)
    target = trash / f"{tag}-{secrets.token_hex(6)}"
    try:
        os.rename(path, target)
    except FileNotFoundError as exc:
        raise CannotMoveAside(errno.ENOENT, "already gone") from exc
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise CannotMoveAside(errno.EXDEV, "on another filesystem than its area") from exc
        raise
    return target


def put_back(moved: Path, original: Path) -> bool:
    """Undo ``move_aside`` (the re-check said no); False if the old name is taken meanwhile."""
    try:
        os.rename(moved, original)
    except OSError:
        return False
    return True


def delete(path: Path) -> None:
    """Remove a file or a whole folder that nobody else can reach any more."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():  # something inside was not removable: say so
            shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
