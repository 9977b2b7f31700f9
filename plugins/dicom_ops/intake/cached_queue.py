"""The cached queue: register folders already present in the queue folders, N at a time.

For a backlog (thousands of finished folders copied in at once) the watcher would
make everything ready at the same moment; the queue instead registers at most
``number`` folders per run, oldest first, so the export works through the backlog
as workers free up. Each direct subfolder of a queue folder is one drop, finished
when its name does not end in a ``.tmp`` suffix and nothing in it changed for
``quiet_seconds`` (``intake.finished``: the watcher's rule). A folder is registered
once, however often the queue runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from dicom_ops.config import Settings
from dicom_ops.db.session import create_engine_for, session_scope
from dicom_ops.intake.finished import is_finished_folder
from dicom_ops.intake.folder_intake import (
    FolderReport,
    normalised,
    register_folder,
    registered_paths,
)

log = logging.getLogger("dicom_ops.queue")


class QueueError(ValueError):
    """The queue cannot run as asked; the message says what to change."""


@dataclass
class QueueResult:
    registered: list[FolderReport] = field(default_factory=list)
    unfinished: int = 0  # still being written: left for a later run
    remaining: int = 0  # unregistered folders beyond this run's ``number``

    @property
    def series_ids(self) -> list[int]:
        return [i for report in self.registered for i in report.series_ids]

    def summary(self) -> dict[str, object]:
        """Small and PHI-free: fit for XCom and logs."""
        return {
            "folders": len(self.registered),
            "folder_ids": [r.folder_id for r in self.registered],
            "series_ids": self.series_ids,
            "instances": sum(r.instances for r in self.registered),
            "non_dicom": sum(r.non_dicom for r in self.registered),
            "unusable": sum(r.unusable for r in self.registered),
            "unfinished": self.unfinished,
            "remaining": self.remaining,
        }


def input_folders(settings: Settings, subfolder: str | None = None) -> list[Path]:
    """The queue folders, or only the one named (or given by path) ``subfolder``."""
    folders = [normalised(f) for f in settings.queue_folders]
    if not folders:
        raise QueueError("no queue folders configured: set DICOM_OPS_QUEUE_FOLDERS")
    if subfolder:
        chosen = [f for f in folders if subfolder in (f.name, str(f))]
        if not chosen:
            names = ", ".join(f.name for f in folders)
            raise QueueError(f"{subfolder!r} is not one of the queue folders ({names})")
        folders = chosen
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise QueueError(f"queue folder(s) not found: {', '.join(missing)}")
    return folders


def register_backlog(settings: Settings, *, number: int, subfolder: str | None = None,
                     engine: Engine | None = None,
                     wall_clock: Callable[[], float] = time.time) -> QueueResult:
    """Register up to ``number`` finished, unregistered folders, oldest first."""
    if number < 1:
        raise QueueError("number must be at least 1")
    engine = engine or create_engine_for(settings.db_url)
    candidates = []
    for folder in input_folders(settings, subfolder):
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                candidates.append((entry.stat(follow_symlinks=False).st_mtime, Path(entry.path)))
    candidates.sort()
    with session_scope(engine) as session:
        done = registered_paths(session, [path for _, path in candidates])
    todo = [path for _, path in candidates if str(path) not in done]

    result = QueueResult()
    for index, folder in enumerate(todo):
        if len(result.registered) == number:
            result.remaining = len(todo) - index
            break
        if not is_finished_folder(folder, wall_clock(), settings.quiet_seconds):
            result.unfinished += 1
            continue
        report = register_folder(settings, engine, folder, source="queue")
        if not report.already_registered:
            result.registered.append(report)
    log.info("queue: %d folder(s) registered (%d series ready); %d still being written; "
             "%d left for later runs", len(result.registered), len(result.series_ids),
             result.unfinished, result.remaining)
    return result
