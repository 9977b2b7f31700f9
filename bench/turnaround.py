"""Turnaround benchmark: the running stack against the DRAW client's documented worst case.

Starts the embedded stack (`dicom-ops stack`: scheduler, triggerer, listener,
emulator with zero processing delay) on free ports, then sends synthetic CT series
one at a time with dcmtk's `storescu` and measures, per series:

  export overhead = (upload starts) - (last C-STORE done) - quiet period
  import overhead = (RTSTRUCT on disk) - (server marks the task completed)

The anchor is the DRAW client's documented worst case for the same two legs: a
10-minute export interval + a 10-minute folder-age rule + a 15-minute poll =
2100 s. Reports the medians and the ratio anchor / ours. Goal: overhead <= 45 s
with the default 30 s quiet period.

    .venv/bin/python bench/turnaround.py [--series 5] [--quiet 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dicom_ops.db.models import Event, JobSeries, Series, Transfer  # noqa: E402
from dicom_ops.db.session import session_scope  # noqa: E402
from dicom_ops.devtools.dcmtk import DcmtkMissing, require_dcmtk  # noqa: E402
from dicom_ops.devtools.synthetic import (  # noqa: E402
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    write_series,
)

from tests.support.stack import start_stack  # noqa: E402

DRAW_CLIENT_WORST_CASE = (10 + 10 + 15) * 60.0


def _job_timings(db_url: str, series_uid: str, emulator_dir: Path
                 ) -> tuple[float, float, float] | None:
    """(upload start, RTSTRUCT delivered, server completed) as epoch seconds, once known."""
    with session_scope(db_url) as session:
        row = session.execute(
            select(JobSeries.job_id, Transfer.server_task_id, Transfer.delivered_at)
            .join(Series, Series.id == JobSeries.series_id)
            .join(Transfer, Transfer.job_id == JobSeries.job_id)
            .where(Series.series_uid == series_uid)
        ).first()
        if row is None or row.delivered_at is None:
            return None
        upload_start = session.scalars(
            select(Event.at).where(Event.job_id == row.job_id, Event.kind == "stage",
                                   Event.message == "upload")
        ).first()
    task = json.loads((emulator_dir / "tasks" / row.server_task_id / "task.json").read_text())
    return upload_start.timestamp(), row.delivered_at.timestamp(), float(task["finish_at"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=5)
    parser.add_argument("--quiet", type=int, default=30, help="DICOM_OPS_QUIET_SECONDS")
    parser.add_argument("--slices", type=int, default=60)
    args = parser.parse_args()
    try:  # dcmtk's, by absolute path: never pynetdicom's namesake in the venv's bin
        storescu = require_dcmtk("storescu")
    except DcmtkMissing as missing:
        sys.exit(str(missing))

    workdir = Path(tempfile.mkdtemp(prefix="dicom-ops-bench-turnaround-"))
    stack = start_stack(workdir / "var", {"DICOM_OPS_QUIET_SECONDS": str(args.quiet),
                                         "DICOM_OPS_EMULATOR_DELAY_SECONDS": "0"})
    export_overheads, import_overheads = [], []
    try:
        stack.wait_healthy(timeout=240)
        db_url = f"sqlite:///{stack.data_root / 'dicom_ops.sqlite'}"
        time.sleep(10)  # let the first-start demo series go by
        for index in range(args.series):
            datasets = make_ct_series(synthetic_patient(100 + index),
                                      SeriesGeometry(slices=args.slices, rows=256, columns=256,
                                                     pixel_spacing=480 / 256))
            files = write_series(datasets, workdir / f"series{index}")
            subprocess.run([storescu, "-aec", "DRAWCLIENT", "127.0.0.1",
                            str(stack.listener_port), *map(str, files)], check=True,
                           capture_output=True)
            sent = time.time()
            deadline = time.monotonic() + args.quiet + 600
            while (timings := _job_timings(db_url, datasets[0].SeriesInstanceUID,
                                           stack.data_root / "emulator")) is None:
                if time.monotonic() > deadline:
                    sys.exit(f"series {index} not delivered in time\n{stack.log()[-4000:]}")
                time.sleep(0.5)
            upload_start, delivered, completed = timings
            export_overheads.append(upload_start - sent - args.quiet)
            import_overheads.append(delivered - completed)
            print(f"series {index}: export overhead {export_overheads[-1]:6.1f} s, "
                  f"import overhead {import_overheads[-1]:6.1f} s", flush=True)
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    export_median = statistics.median(export_overheads)
    import_median = statistics.median(import_overheads)
    total = export_median + import_median
    print(f"\nmedian export overhead (last C-STORE -> upload start, minus {args.quiet} s "
          f"quiet period): {export_median:.1f} s")
    print(f"median import overhead (server completed -> RTSTRUCT on disk): {import_median:.1f} s")
    print(f"total overhead {total:.1f} s (goal <= 45 s); DRAW client worst case "
          f"{DRAW_CLIENT_WORST_CASE:.0f} s; ratio worst-case / ours = "
          f"{DRAW_CLIENT_WORST_CASE / max(total, 0.001):.0f}x  ({datetime.now(UTC):%Y-%m-%d})")


if __name__ == "__main__":
    main()
