"""`dicom-ops series list`: every series intake knows, with its state."""

from __future__ import annotations

import argparse
import json

from dicom_ops.config import get_settings
from dicom_ops.db.models import SERIES_STATES
from dicom_ops.db.session import session_scope
from dicom_ops.intake.series_registry import list_series

COLUMNS = (
    ("id", "ID"), ("state", "STATE"), ("source", "SOURCE"), ("modality", "MOD"),
    ("instances", "N"), ("study_uid", "STUDY UID"), ("series_uid", "SERIES UID"),
    ("description", "DESCRIPTION"), ("folder", "FOLDER"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("series", help="series received (listener, watcher, queue)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="one row per series: UIDs, modality, description, instances, folder, "
                     "source and state")
    listing.add_argument("--state", choices=SERIES_STATES, help="only series in this state")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    with session_scope(get_settings().db_url) as session:
        rows = list_series(session, args.state)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no series")
        return 0
    table = [[title for _, title in COLUMNS]]
    for row in rows:
        cells = ["" if row[key] is None else str(row[key]) for key, _ in COLUMNS]
        if row["state_detail"]:
            cells[1] += f" ({row['state_detail']})"
        table.append(cells)
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
              .rstrip())
    return 0
