"""`dicom-ops stack`: the embedded stack that `make run` starts."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stack", help="start Airflow standalone, the listener and the DRAW emulator (make run)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dicom_ops.stack import run

    return run()
