"""`dicom-ops db upgrade|current`: Alembic migrations of the app DB."""

from __future__ import annotations

import argparse

from dicom_ops.config import get_settings
from dicom_ops.db.session import current_revision, head_revision, upgrade


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="migrate the app DB")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("upgrade", help="apply all migrations (idempotent)")
    up.set_defaults(func=_upgrade)
    cur = actions.add_parser("current", help="print the current and head revisions")
    cur.set_defaults(func=_current)


def _upgrade(args: argparse.Namespace) -> int:
    url = get_settings().db_url
    upgrade(url)
    print(f"app DB at revision {current_revision(url)}")
    return 0


def _current(args: argparse.Namespace) -> int:
    print(f"current: {current_revision(get_settings().db_url)}  head: {head_revision()}")
    return 0
