"""`dicom-ops watcher`: register folders other programs write into the watch folders."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from dicom_ops.cli import CommandError
from dicom_ops.config import get_settings

log = logging.getLogger("dicom_ops.watcher")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "watcher", help="watch DICOM_OPS_WATCH_FOLDERS for finished series folders",
        description="Register each folder written into a watch folder once it is finished "
                    "(name without a .tmp suffix, quiet for DICOM_OPS_QUIET_SECONDS). "
                    "Stops cleanly on SIGTERM or Ctrl-C.")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dicom_ops.commands._shared import require_migrated_db
    from dicom_ops.intake.watcher import FolderWatcher, WatchFolderMissing

    settings = get_settings()
    if not settings.watch_folders:
        raise CommandError("no watch folders configured: set DICOM_OPS_WATCH_FOLDERS")
    require_migrated_db(settings)
    watcher = FolderWatcher(settings)
    try:
        watcher.start()
    except WatchFolderMissing as exc:
        raise CommandError(str(exc)) from exc
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        watcher.run_until(stopping)
    finally:
        watcher.stop()
        log.info("watcher stopped")
    return 0
