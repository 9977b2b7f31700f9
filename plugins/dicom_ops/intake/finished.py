"""The one rule for "a folder is finished", used by the listener, the watcher and the queue.

Two parts, each needed on its own by some of them:

- **the name** (the sendit rule): a folder whose name's last suffix starts with
  ``.tmp`` is still being written; whoever writes it renames it when done. The
  listener's own round folders (``<series>.tmp-<n>``) follow the rule too.
- **the quiet period**: nothing changed for ``quiet_seconds``. The listener measures
  from its last instance (monotonic clock), the watcher from its last file system
  event and then from the folder's mtimes, the queue from the mtimes only. A folder
  is quiet from the moment exactly ``quiet_seconds`` have passed (``>=``).
"""

from __future__ import annotations

import os
from pathlib import Path

UNFINISHED_SUFFIX = ".tmp"


def is_unfinished_name(name: str) -> bool:
    """The sendit rule: a name whose last suffix starts with ``.tmp`` is still being written."""
    return os.path.splitext(name)[1].startswith(UNFINISHED_SUFFIX)


def is_quiet(last_change: float, now: float, quiet_seconds: float) -> bool:
    """True when ``quiet_seconds`` or more have passed since ``last_change``."""
    return now - last_change >= quiet_seconds


def newest_change(folder: Path) -> float:
    """The latest mtime of ``folder`` and anything in it (0 if it vanished)."""
    newest = 0.0
    for root, dirs, names in os.walk(folder):
        for name in (*dirs, *names, "."):
            try:
                newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def is_finished_folder(folder: Path, now: float, quiet_seconds: float) -> bool:
    """A folder written by another program is finished: its name says so and nothing in
    it was modified for ``quiet_seconds`` before ``now`` (wall-clock seconds)."""
    return not is_unfinished_name(folder.name) and is_quiet(newest_change(folder), now,
                                                            quiet_seconds)
