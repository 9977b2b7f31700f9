"""`dicom-ops config`: the effective settings, or the README table (--markdown)."""

from __future__ import annotations

import argparse
import json

from dicom_ops.config import describe, get_settings, settings_markdown


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="show the effective settings")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_markdown())
        return 0
    shown = describe(get_settings())
    if args.json:
        print(json.dumps(shown, indent=2))
    else:
        width = max(len(k) for k in shown)
        for key, value in shown.items():
            print(f"{key:<{width}}  {value}")
    return 0
