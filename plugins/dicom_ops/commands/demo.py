"""`dicom-ops demo`: send one synthetic CT series to our own listener, once.

`make run` starts it on the first start of a stack whose DRAW connection is the
local emulator, so a newcomer sees the whole loop (listener -> draw_export ->
emulator -> draw_import -> RTSTRUCT in the origin folder) with no manual step.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dicom_ops.cli import CommandError
from dicom_ops.config import get_settings
from dicom_ops.delivery.cstore import DicomNode, StoreFailed, send_files
from dicom_ops.devtools.synthetic import SeriesGeometry, write_sample

DEMO_CALLING_AET = "DEMO_SCANNER"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="send one synthetic CT series to the listener "
                                                "(once per data root)")
    parser.add_argument("--again", action="store_true", help="send even if sent before")
    parser.add_argument("--slices", type=int, default=30)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    demo_dir = settings.data_root / "demo"
    marker = demo_dir / "sent"
    if marker.exists() and not args.again:
        print(f"demo series already sent ({marker}); use --again to send another")
        return 0
    geometry = SeriesGeometry(slices=args.slices, rows=64, columns=64, pixel_spacing=7.5)
    folder = write_sample(demo_dir / "sample", 1, geometry)[0]
    files = sorted(Path(folder).glob("*.dcm"))
    node = DicomNode(settings.listener_host, settings.listener_port, settings.ae_title)
    try:
        send_files(files, node, DEMO_CALLING_AET, retries=8, backoff=1.0)
    except StoreFailed as exc:
        raise CommandError(f"could not send the demo series: {exc}") from None
    marker.write_text("sent\n")
    print(f"demo: sent {len(files)} synthetic CT images to {node}. In about "
          f"{settings.quiet_seconds + 30} s the RTSTRUCT appears in the series' origin folder "
          "under the datastore: follow it in the Airflow UI (DAGs draw_export, draw_import) "
          "or with `dicom-ops jobs list`.")
    return 0
