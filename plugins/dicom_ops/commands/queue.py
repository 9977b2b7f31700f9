"""`dicom-ops queue`: register finished folders already in the queue folders, N at a time."""

from __future__ import annotations

import argparse
import json

from dicom_ops.cli import CommandError
from dicom_ops.config import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "queue", help="register finished folders of the cached queue (DICOM_OPS_QUEUE_FOLDERS)",
        description="Register up to NUMBER finished folders (oldest first) found in the queue "
                    "folders as ready series. A folder is never registered twice; run it again "
                    "for the next batch.")
    parser.add_argument("--number", type=int, default=50,
                        help="at most this many folders (default 50)")
    parser.add_argument("--subfolder", help="only this queue folder (its name or path)")
    parser.add_argument("--json", action="store_true", help="machine-readable summary")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dicom_ops.commands._shared import require_migrated_db
    from dicom_ops.intake.cached_queue import QueueError, register_backlog

    settings = get_settings()
    require_migrated_db(settings)
    try:
        result = register_backlog(settings, number=args.number, subfolder=args.subfolder)
    except QueueError as exc:
        raise CommandError(str(exc)) from exc
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"registered {summary['folders']} folder(s): {len(result.series_ids)} series ready, "
              f"{summary['instances']} instances; {summary['unfinished']} still being written; "
              f"{summary['remaining']} left for later runs")
    return 0
