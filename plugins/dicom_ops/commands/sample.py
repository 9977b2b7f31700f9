"""`dicom-ops sample`: write synthetic CT series (made-up patients, dense fake PHI)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dicom_ops.devtools.synthetic import SeriesGeometry, write_sample


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sample", help="write synthetic CT series for demos and tests")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--patients", type=int, default=1, help="one series per patient")
    parser.add_argument("--slices", type=int, default=20, help="slices per series")
    parser.add_argument("--size", type=int, default=64, help="rows and columns (e.g. 512)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    spacing = 480.0 / args.size
    geometry = SeriesGeometry(slices=args.slices, rows=args.size, columns=args.size,
                              pixel_spacing=spacing)
    for folder in write_sample(args.out, args.patients, geometry):
        print(folder)
    return 0
