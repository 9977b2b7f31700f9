"""The watcher: folders that other programs write into the watch folders.

Each direct subfolder of a watch folder is one drop (it may hold several series).
A drop is finished when its name's last suffix does not start with ``.tmp`` and
it has been quiet for ``quiet_seconds``: no file system event for it, and nothing
in it (files or folders) modified more recently than that (the rule is
``intake.finished``, shared with the listener and the queue). It is then registered
once (``folder_intake``).

Cost stays with what is new: inotify (through ``watchdog``) watches each watch
folder itself, which reports new drops, and each drop only while it is pending
(being written); a check looks only at pending drops. Registered drops are
neither watched nor looked at again. At start, drops present but not registered
(written while the watcher was stopped) are pending once. inotify sees local
writes only; for network shares written by other hosts, use the cached queue.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, select
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from dicom_ops.config import Settings
from dicom_ops.db.models import IntakeFolder
from dicom_ops.db.session import create_engine_for, session_scope
from dicom_ops.failures import log_failure
from dicom_ops.intake.finished import is_quiet, is_unfinished_name, newest_change
from dicom_ops.intake.folder_intake import (
    FolderReport,
    normalised,
    register_folder,
    registered_paths,
)

log = logging.getLogger("dicom_ops.watcher")


class WatchFolderMissing(RuntimeError):
    pass


class _Events(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # our own reads
        self.watcher.changed(Path(os.fsdecode(event.src_path)))
        if getattr(event, "dest_path", ""):
            self.watcher.changed(Path(os.fsdecode(event.dest_path)))


class FolderWatcher:
    def __init__(self, settings: Settings, *, engine: Engine | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.engine = engine or create_engine_for(settings.db_url)
        self.watch_folders = [normalised(f) for f in settings.watch_folders]
        self.quiet_seconds = settings.quiet_seconds
        self.clock = clock
        self.wall_clock = wall_clock
        self._pending: dict[Path, float] = {}  # drop folder -> when it last changed (clock)
        self._lock = threading.Lock()
        self._observer: Observer | None = None
        self._handler = _Events(self)
        self._drop_watches: dict[Path, object] = {}

    def start(self) -> None:
        missing = [str(f) for f in self.watch_folders if not f.is_dir()]
        if missing:
            raise WatchFolderMissing(f"watch folder(s) not found: {', '.join(missing)}")
        self._observer = Observer()
        for folder in self.watch_folders:
            self._observer.schedule(self._handler, str(folder), recursive=False)
        self._observer.start()
        waiting = self._pick_up_unregistered()
        log.info("watching %d folder(s); %d unregistered folder(s) found at start",
                 len(self.watch_folders), waiting)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None
        self._drop_watches.clear()

    def _pick_up_unregistered(self) -> int:
        present = [Path(e.path) for folder in self.watch_folders for e in os.scandir(folder)
                   if e.is_dir(follow_symlinks=False)]
        with session_scope(self.engine) as session:
            done = registered_paths(session, present)
        now = self.clock()
        waiting = [p for p in present if str(p) not in done]
        with self._lock:
            for folder in waiting:
                # Written while we were away: the mtimes decide whether it is quiet.
                self._pending.setdefault(folder, now - self.quiet_seconds)
        return len(waiting)

    def changed(self, path: Path) -> None:
        """A file system event under a watch folder (called from watchdog's thread)."""
        for folder in self.watch_folders:
            try:
                relative = path.relative_to(folder)
            except ValueError:
                continue
            if relative.parts:
                with self._lock:
                    self._pending[folder / relative.parts[0]] = self.clock()
            return

    def pending(self) -> list[Path]:
        with self._lock:
            return sorted(self._pending)

    def tick(self) -> list[FolderReport]:
        """Register the drops that are finished now."""
        now = self.clock()
        with self._lock:
            pending = dict(self._pending)
        self._watch_pending_drops(pending)
        reports = []
        for folder, changed in pending.items():
            if not is_quiet(changed, now, self.quiet_seconds):
                continue
            if not folder.is_dir() or is_unfinished_name(folder.name):
                # Gone, a file, or still being written: its rename brings it back.
                self._forget(folder, since=now)
                continue
            wall_now = self.wall_clock()
            last_write = newest_change(folder)
            if not is_quiet(last_write, wall_now, self.quiet_seconds):
                age = wall_now - last_write
                with self._lock:
                    self._pending[folder] = max(self._pending.get(folder, 0.0), now - age)
                continue
            if not self._forget(folder, since=now):
                continue  # an event arrived meanwhile: not quiet after all
            try:
                report = register_folder(self.settings, self.engine, folder, source="watcher")
            except Exception:
                log_failure(log, "could not register a folder in the watch folders; "
                                 "it is tried again after it changes or at the next start")
                continue
            if report.already_registered:
                log.warning("folder #%s changed after it was registered: changes are ignored "
                            "(write a new folder to send again)",
                            self._folder_id(folder) or "?")
            reports.append(report)
        return reports

    def _watch_pending_drops(self, pending: dict[Path, float]) -> None:
        """Events from inside a drop only while it is pending (mtimes cover the gap)."""
        if self._observer is None:
            return
        for folder in pending:
            if folder in self._drop_watches or not folder.is_dir():
                continue
            try:
                self._drop_watches[folder] = self._observer.schedule(
                    self._handler, str(folder), recursive=True)
            except OSError:
                continue  # vanished meanwhile

    def _forget(self, folder: Path, since: float) -> bool:
        """Drop ``folder`` from the pending set unless it changed after ``since``."""
        with self._lock:
            if self._pending.get(folder, 0.0) > since:
                return False
            self._pending.pop(folder, None)
        watch = self._drop_watches.pop(folder, None)
        if watch is not None and self._observer is not None:
            try:
                self._observer.unschedule(watch)
            except (KeyError, OSError):
                pass  # the folder is gone: inotify dropped the watch already
        return True

    def _folder_id(self, folder: Path) -> int | None:
        with session_scope(self.engine) as session:
            return session.scalar(select(IntakeFolder.id).where(IntakeFolder.path == str(folder)))

    def run_until(self, stopping: threading.Event) -> None:
        interval = min(1.0, self.quiet_seconds / 4)
        while not stopping.wait(interval):
            try:
                self.tick()
            except Exception:
                log_failure(log, "watch check failed; trying again")

    def watched_drops(self) -> list[Path]:
        """Drops with their own inotify watch right now (only pending ones)."""
        return sorted(self._drop_watches)
