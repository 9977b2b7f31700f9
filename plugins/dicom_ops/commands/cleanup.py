"""`dicom-ops cleanup`: the cleanup draw_cleanup runs, by hand (same code, same report)."""

from __future__ import annotations

import argparse
import json

from dicom_ops.cli import CommandError
from dicom_ops.config import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cleanup", help="remove what is past its retention (as the DAG draw_cleanup does)",
        description="Remove upload zips, work folders, quarantined files and abandoned .tmp "
                    "folders past their retention (DICOM_OPS_RETENTION_*), and more of them, "
                    "oldest first, while free disk is below DICOM_OPS_CLEANUP_WATERMARK. "
                    "Never touches a series still receiving or a job queued, processing or "
                    "waiting for the DRAW server.")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be removed; delete nothing")
    parser.add_argument("--older-than-hours", type=float, metavar="H",
                        help="replace every area's retention by H hours for this run "
                             "(areas kept forever stay kept)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary (numbers only) as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dicom_ops.cleanup.run import run_cleanup
    from dicom_ops.commands._shared import require_migrated_db

    if args.older_than_hours is not None and args.older_than_hours < 0:
        raise CommandError("--older-than-hours must be 0 or more")
    settings = get_settings()
    require_migrated_db(settings)
    report = run_cleanup(settings, dry_run=args.dry_run, older_than_hours=args.older_than_hours)
    if args.json:
        print(json.dumps(report.summary(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 1 if report.errors else 0
