"""`dicom-ops listener`: the DICOM listener (storage SCP) with its completion checker."""

from __future__ import annotations

import argparse
import signal
import threading

from dicom_ops.cli import CommandError
from dicom_ops.commands._shared import require_own_data_root
from dicom_ops.config import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "listener", help="receive series over DICOM (C-STORE) until stopped",
        description="Receive series over DICOM into the datastore; a series is ready once "
                    "quiet for DICOM_OPS_QUIET_SECONDS. Stops cleanly on SIGTERM or Ctrl-C; "
                    "series still receiving are picked up again at the next start.")
    parser.add_argument("--port", type=int, help="override DICOM_OPS_LISTENER_PORT")
    parser.set_defaults(func=_run)


def wait_for_stop_signal() -> None:
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()


def _run(args: argparse.Namespace) -> int:
    from dicom_ops.intake.listener import Listener, ListenerConfigError

    settings = get_settings()
    require_own_data_root(settings)
    listener = Listener(settings)
    try:
        listener.start(port=args.port)
    except ListenerConfigError as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        port = args.port or settings.listener_port
        raise CommandError(
            f"cannot listen on {settings.listener_host}:{port}: {exc.strerror or exc}"
        ) from exc
    try:
        wait_for_stop_signal()
    finally:
        listener.stop()
    return 0
