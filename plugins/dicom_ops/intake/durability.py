"""Received instances are fsynced off the C-STORE round trip, and before a release is answered.

The listener writes an instance under a temporary name and renames it once whole,
before it answers the C-STORE: a crash of the listener (kill -9 included) never
leaves a torn or missing file that the sender was told is stored. What a rename
alone does not survive is a power loss: the file's blocks may still be in the page
cache. An fsync inside the handler made every C-STORE round trip ~1 ms longer (a
sender waits for each answer before the next instance); here a small pool fsyncs
each file while the next ones arrive, and

- before the listener answers a sender's A-RELEASE request, every file of that
  association is synced: an association that ends in a release has put all it sent
  on disk;
- a round is not published (series ``ready``) before its files are synced: the
  tracker counts an instance as in flight until its fsync is done;
- a file that cannot be synced (a disk error, after the sender was told it is
  stored) is removed, and its series ends its round in ``error`` naming the cause,
  never ``ready`` with a slice missing; sending the series again completes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from dicom_ops.failures import describe
from dicom_ops.files import fsync_file

log = logging.getLogger("dicom_ops.listener")

# fsyncs wait on the disk, not the GIL: a few at once keep up with many associations.
SYNC_WORKERS = 4
_PRUNE_AT = 256  # settled futures are dropped from an association's list past this many


class Durability:
    """fsyncs written files in the background, per association (an opaque key)."""

    def __init__(self, workers: int = SYNC_WORKERS,
                 sync: Callable[[Path], None] = fsync_file) -> None:
        self._sync = sync
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="fsync")
        self._pending: dict[int, list[Future]] = {}
        self._lock = threading.Lock()

    def sync_later(self, association: int, path: Path, label: str,
                   done: Callable[[bool], None]) -> None:
        """fsync ``path``; then ``done(True)``, or, if it cannot be synced, remove it and
        ``done(False)``. ``label`` names the file in a log line (never a UID)."""
        future = self._pool.submit(self._sync_one, path, label, done)
        with self._lock:
            futures = self._pending.setdefault(association, [])
            futures.append(future)
            if len(futures) > _PRUNE_AT:
                futures[:] = [f for f in futures if not f.done() or not f.result()]

    def settle(self, association: int) -> int:
        """Wait until every file of ``association`` is synced; how many could not be."""
        with self._lock:
            futures = self._pending.pop(association, [])
        wait(futures)
        return sum(1 for future in futures if not future.result())

    def forget(self, association: int) -> None:
        """The association ended without a release: its files still sync, nobody waits."""
        with self._lock:
            self._pending.pop(association, None)

    def shutdown(self) -> None:
        """Finish every sync already asked for."""
        self._pool.shutdown(wait=True)

    def _sync_one(self, path: Path, label: str, done: Callable[[bool], None]) -> bool:
        try:
            self._sync(path)
            ok = True
        except OSError as exc:
            log.error("%s: cannot fsync a received instance (%s); dropped: the series "
                      "must be sent again", label, describe(exc))
            path.unlink(missing_ok=True)
            ok = False
        done(ok)
        return ok
