"""File writes that never leave a half-written file where a reader could see it.

Every file we create appears under its final name only once it is complete: it is
written under a temporary name in the same folder, fsynced, then renamed over the
final name, or, when an existing file must be kept, hard-linked to it (the link
fails if the name is taken, so the check and the write are one step). Then the
folder is fsynced, so the name survives a crash too.

The temporary name is ``.<name>.<host>-<pid>-<n>.part``: hidden from readers that skip
dot-files, unique per process and write also when several hosts share the data root
(a pid alone repeats from host to host), and recognised by ``remove_partial_files``
when a crash left one behind. This module is the one place that knows how; intake,
delivery, the DRAW client, the zip packer and the emulator only choose the policy
(overwrite or keep the first copy, the file mode).
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import shutil
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

PART_SUFFIX = ".part"
DEFAULT_MODE = 0o644
# File systems without hard links (some SMB/NFS mounts) fall back to check-then-rename.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS,
                            errno.EMLINK, errno.EXDEV})

_part_numbers = itertools.count(1)
_part_lock = threading.Lock()

Chunks = bytes | bytearray | memoryview | Iterable[bytes | bytearray | memoryview]


def fsync_directory(directory: Path) -> None:
    """Make the names in ``directory`` durable (a rename is only safe once this returns)."""
    _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)


def fsync_file(path: Path) -> None:
    """Make the content of an already written ``path`` durable (``intake.durability``)."""
    _fsync(path, os.O_RDONLY)


def _fsync(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def free_disk_bytes(path: Path) -> int:
    """Space available on the filesystem holding ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def writer_tag() -> str:
    """``<host>-<pid>``: names this process among those of every host on the data root."""
    return f"{socket.gethostname()}-{os.getpid()}"


def is_partial_name(name: str) -> bool:
    """True for the temporary name of a write that has not been published (yet, or ever)."""
    return name.startswith(".") and name.endswith(PART_SUFFIX)


def write_atomically(path: Path, chunks: Chunks, *, overwrite: bool = True,
                     mode: int = DEFAULT_MODE, sync_directory: bool = True,
                     sync_file: bool = True) -> bool:
    """Write ``chunks`` (bytes, or an iterable of bytes/memoryview) as ``path``, whole or
    not at all; returns whether ``path`` now holds these bytes.

    With ``overwrite=False`` an existing ``path`` is kept and ``False`` returned (the
    new bytes are dropped): the first copy wins. ``mode`` is applied as given, whatever
    the umask: it is a promise to the file's readers (a TPS import running as another
    user, a secret only we may read). ``sync_directory=False`` leaves the folder's fsync
    to a caller that publishes the whole folder later (intake's round folders), and
    ``sync_file=False`` the file's own fsync to a caller that syncs it later, before it
    relies on it surviving a power loss (the listener's ``intake.durability``). On any
    error nothing is left: neither ``path`` nor a temporary file.
    """
    if isinstance(chunks, bytes | bytearray | memoryview):
        chunks = (chunks,)
    with _complete_part(path, mode, temporary=None, sync=sync_file) as (handle, part):
        for chunk in chunks:
            handle.write(chunk)
    published = _publish_part(part, path, overwrite=overwrite)
    if published and sync_directory:
        fsync_directory(path.parent)
    return published


@contextmanager
def atomic_writer(path: Path, *, mode: int = DEFAULT_MODE, temporary: Path | None = None,
                  sync_directory: bool = True) -> Iterator[BinaryIO]:
    """A file handle (read/write, seekable) whose content becomes ``path`` when the block
    ends without an error; on an error the temporary file is removed and ``path`` is
    left as it was. For writers that stream (a download, a zip being packed).

    ``temporary`` names the temporary file instead of the hidden unique one, for a
    caller that is the only writer of ``path`` and whose leftovers are recognised by
    that name elsewhere (the export's ``upload.zip.part``); a leftover is truncated.
    """
    with _complete_part(path, mode, temporary=temporary) as (handle, part):
        yield handle
    _publish_part(part, path, overwrite=True)
    if sync_directory:
        fsync_directory(path.parent)


def keep_secret(path: Path, nbytes: int = 32) -> str:
    """A random secret generated once into ``path`` (mode 600) and read back later.

    Two processes starting at once agree: the first copy written wins and the other
    reads it. An empty file (a crash before this write was atomic) is replaced.
    """
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = None
    if kept:
        return kept
    value = secrets.token_urlsafe(nbytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    if write_atomically(path, (value + "\n").encode(), overwrite=kept is not None, mode=0o600):
        return value
    return path.read_text().strip()


def link_or_copy_atomically(source: Path, final: Path) -> bool:
    """Give ``final`` the content of ``source`` (hard link when possible, else a copy).

    ``source`` is left alone. An existing ``final`` is kept (returns ``False``). The
    folder is not fsynced here: the caller publishes the folder as a whole.
    """
    if final.exists():
        return False
    part = _new_part_path(final)
    try:
        try:
            os.link(source, part)
        except OSError:  # another filesystem, or one without hard links
            shutil.copyfile(source, part)
            with open(part, "rb") as handle:
                os.fsync(handle.fileno())
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return _publish_part(part, final, overwrite=False)


def move_without_overwrite(source: Path, final: Path) -> bool:
    """Move ``source`` to ``final`` unless ``final`` exists (then ``source`` is removed)."""
    published = _publish(source, final, overwrite=False)
    if not published:
        source.unlink(missing_ok=True)
    return published


def remove_partial_files(folder: Path) -> int:
    """Delete temporary files left by an interrupted write; returns how many."""
    removed = 0
    for entry in os.scandir(folder):
        if is_partial_name(entry.name):
            os.unlink(entry.path)
            removed += 1
    return removed


# --- the steps every write shares ----------------------------------------------------


def _new_part_path(final: Path) -> Path:
    with _part_lock:
        number = next(_part_numbers)
    return final.with_name(f".{final.name}.{writer_tag()}-{number}{PART_SUFFIX}")


def _open_new_part(final: Path) -> tuple[int, Path]:
    while True:
        part = _new_part_path(final)
        try:
            return os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), part
        except FileExistsError:  # left by a crashed process with our host and pid: next
            continue


@contextmanager
def _complete_part(final: Path, mode: int, *, temporary: Path | None,
                   sync: bool = True) -> Iterator[tuple[BinaryIO, Path]]:
    """A new temporary file beside ``final``: flushed, fsynced (unless ``sync`` is false)
    and closed when the block ends, removed when it fails."""
    if temporary is None:
        descriptor, part = _open_new_part(final)
    else:
        part = temporary
        descriptor = os.open(part, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, mode)
        # Buffered: unlike a raw file, it writes every byte of a chunk or raises.
        with os.fdopen(descriptor, "w+b") as handle:
            descriptor = -1  # the handle owns it now
            yield handle, part
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
    except BaseException:
        if descriptor != -1:
            os.close(descriptor)
        part.unlink(missing_ok=True)
        raise


def _publish(part: Path, final: Path, *, overwrite: bool) -> bool:
    """Give ``part`` the name ``final``. Without ``overwrite`` an existing ``final`` wins:
    ``False``, and ``part`` is left where it is for the caller to deal with."""
    if overwrite:
        os.replace(part, final)
        return True
    try:
        os.link(part, final)  # fails if final exists: the check and the write are one step
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if final.exists():  # no hard links here: a plain check-then-rename
            return False
        os.replace(part, final)
        return True
    os.unlink(part)
    return True


def _publish_part(part: Path, final: Path, *, overwrite: bool) -> bool:
    """``_publish`` for a temporary file of ours: it is gone afterwards, whatever happens."""
    try:
        published = _publish(part, final, overwrite=overwrite)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if not published:
        part.unlink(missing_ok=True)
    return published
