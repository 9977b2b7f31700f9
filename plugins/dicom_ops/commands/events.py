"""`dicom-ops events [--follow]`: the audit log as one line per series and job event.

`make run` shows this on its console (Airflow's own output goes to a log file), so a new
user can watch the demo series arrive, become ready, be exported and come back. Lines name
series and jobs by id; messages are the audit log's own (which never holds patient data),
with any UID-like token replaced once more.
"""

from __future__ import annotations

import argparse
import time

from dicom_ops.config import get_settings
from dicom_ops.db.audit import events_after, last_event_id
from dicom_ops.db.models import Event
from dicom_ops.db.session import session_scope
from dicom_ops.pipeline.errors import redact_identifiers

# What people call the steps; the audit log's kinds stay as they are.
LABELS = {"receiving": "receiving", "ready": "ready", "uploaded": "exported",
          "server completed": "ready at the DRAW server", "finished": "delivered"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("events", help="series and job events, one line each")
    parser.add_argument("--follow", action="store_true",
                        help="keep printing new events as they are recorded (Ctrl-C stops)")
    parser.add_argument("--new", action="store_true",
                        help="only events recorded from now on (with --follow)")
    parser.add_argument("--interval", type=float, default=1.0, metavar="S",
                        help="seconds between looks at the app DB with --follow (default 1)")
    parser.set_defaults(func=_run)


def event_line(event: Event) -> str:
    """``12:03:04  job 5  failed: upload: the DRAW server refused ...``"""
    subject = (f"job {event.job_id}" if event.job_id is not None
               else f"series #{event.series_id}" if event.series_id is not None else "dicom-ops")
    label = LABELS.get(event.kind, event.kind)
    message = redact_identifiers(event.message or "")
    if event.kind == "stage":
        label, message = f"stage {message}", ""
    at = event.at.strftime("%H:%M:%S") if event.at else "--:--:--"
    return f"{at}  {subject:<12} {label}" + (f": {message}" if message else "")


def _run(args: argparse.Namespace) -> int:
    url = get_settings().db_url
    with session_scope(url) as session:
        after = last_event_id(session) if args.new else 0
    while True:
        with session_scope(url) as session:
            events = events_after(session, after)
            lines = [event_line(event) for event in events]
        for line in lines:
            print(line, flush=True)
        if events:
            after = events[-1].id
        if not args.follow:
            return 0
        if not events:
            time.sleep(args.interval)
