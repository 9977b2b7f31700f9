"""`dicom-ops db upgrade|current`: Alembic migrations of the app DB."""

from __future__ import annotations

import argparse

from dicom_ops.cli import CommandError
from dicom_ops.config import get_settings
from dicom_ops.data_root import DataRootMismatch, stamp
from dicom_ops.db.session import current_revision, head_revision, upgrade


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="migrate the app DB")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser(
        "upgrade", help="apply all migrations and stamp the data root (idempotent)",
        description="Apply all migrations, then give the data root and the app DB one id "
                    "(the marker file <data root>/.dicom-ops-data-root), which the listener "
                    "and the workers check at start.")
    up.add_argument("--adopt-data-root", action="store_true",
                    help="write the app DB's marker into a data root that lost it "
                         "(e.g. restored from a backup without it)")
    up.set_defaults(func=_upgrade)
    cur = actions.add_parser("current", help="print the current and head revisions")
    cur.set_defaults(func=_current)


def _upgrade(args: argparse.Namespace) -> int:
    settings = get_settings()
    upgrade(settings.db_url)
    try:
        marker_id = stamp(settings, adopt=args.adopt_data_root)
    except DataRootMismatch as exc:
        raise CommandError(str(exc)) from exc
    print(f"app DB at revision {current_revision(settings.db_url)}; "
          f"data root {settings.data_root.resolve()} is {marker_id}")
    return 0


def _current(args: argparse.Namespace) -> int:
    print(f"current: {current_revision(get_settings().db_url)}  head: {head_revision()}")
    return 0
