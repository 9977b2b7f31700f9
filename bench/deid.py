"""De-identification benchmark: our engine against the deid library and a plain copy.

The same synthetic CT series (default 300 slices of 512x512, ~150 MiB, written once
with the factory to a temporary folder) goes through three kinds of whole processes,
timed in the same run, each round in a rotating order:

  ours   python -c: load the recipe, ``deidentify_series(..., workers=2)``; and the
         same with one process, for information
  deid   python -c: deid's ``replace_identifiers`` with the same recipe, the same
         values (pseudonym, date offset, keyed UIDs) and private tags removed
  copy   ``cp -r`` of the folder (the anchor), and a Python ``shutil.copytree``
         process for reference

Outputs are deleted (untimed) and the page cache flushed to disk (``sync``) before
every timed process. The first round only warms up (page cache, compiled bytecode,
the recipe cache), as on an installation that has run before. Reports the medians
and the ratios deid-time / our-time (goal >= 5) and copy-time / our-time (goal >= 0.6),
plus, for information, the full ``dicom-ops deidentify --no-egress-check`` command (its
start-up includes importing every dicom-ops command module, SQLAlchemy and pydicom).
Bytecode is written as on an installation (PYTHONDONTWRITEBYTECODE is dropped).

    .venv/bin/python bench/deid.py [--rounds 5] [--deid-rounds 3] [--slices 300] [--size 512]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from dicom_ops.config import REPO_ROOT
from dicom_ops.devtools.synthetic import (
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    write_series,
)
from dicom_ops.devtools.timing import timed  # noqa: E402

BIN = Path(sys.executable).parent
RECIPE = REPO_ROOT / "include" / "deid" / "deid.dicom"
SECRET = "bench-secret-0123456789abcdef"

OURS = """
import os, sys
from dicom_ops.deid.engine import deidentify_series
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.recipe import default_cache_dir, load_recipe
source, target, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
recipe = load_recipe(sys.argv[4], cache_dir=default_cache_dir())
files = [os.path.join(source, name) for name in sorted(os.listdir(source))]
deidentify_series(files, target, recipe, DeidKeys.from_secret(os.environ["SECRET"]),
                  workers=workers)
"""

DEID_LIBRARY = """
import os, sys
from pathlib import Path
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.devtools.deid_reference import run_deid_library
source, target = sys.argv[1], Path(sys.argv[2])
files = [Path(source, name) for name in sorted(os.listdir(source))]
run_deid_library(files, Path(sys.argv[3]), DeidKeys.from_secret(os.environ["SECRET"]),
                 os.environ["PATIENT_ID"], target)
"""

PYTHON_COPY = "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2])"



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (ours, copies)")
    parser.add_argument("--deid-rounds", type=int, default=3,
                        help="timed rounds of the (slow) deid library")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2, help="our engine's processes")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dicom-ops-bench-deid-"))
    try:
        patient = synthetic_patient(0)
        source = work / "in"
        geometry = SeriesGeometry(slices=args.slices, rows=args.size, columns=args.size,
                                  pixel_spacing=480 / args.size)
        write_series(make_ct_series(patient, geometry), source)
        size_mib = sum(f.stat().st_size for f in source.iterdir()) / 2**20
        print(f"series: {args.slices} slices of {args.size}x{args.size}, {size_mib:.0f} MiB, "
              f"{os.cpu_count()} CPUs")

        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(SECRET=SECRET, PATIENT_ID=patient.patient_id, MESSAGELEVEL="ERROR",
                   XDG_CACHE_HOME=str(work / "cache"), DICOM_OPS_SECRET_KEY=SECRET,
                   DICOM_OPS_DATA_ROOT=str(work / "var"))
        python = sys.executable
        contenders = {
            "ours": [python, "-c", OURS, str(source), str(work / "ours"), str(args.workers),
                     str(RECIPE)],
            "ours (1 process)": [python, "-c", OURS, str(source), str(work / "ours1"), "1",
                                 str(RECIPE)],
            "copy (cp -r)": ["cp", "-r", str(source), str(work / "copy")],
            "copy (python shutil)": [python, "-c", PYTHON_COPY, str(source),
                                     str(work / "pycopy")],
            "dicom-ops deidentify": [str(BIN / "dicom-ops"), "deidentify", "--no-egress-check",
                                     "--workers", str(args.workers), str(source),
                                     str(work / "cli")],
            "deid library": [python, "-c", DEID_LIBRARY, str(source), str(work / "deid"),
                             str(RECIPE)],
        }
        outputs = {"ours": "ours", "ours (1 process)": "ours1", "copy (cp -r)": "copy",
                   "copy (python shutil)": "pycopy",
                   "dicom-ops deidentify": "cli", "deid library": "deid"}
        times: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for round_number in range(args.rounds + 1):
            order = names[round_number % len(names):] + names[:round_number % len(names)]
            for name in order:
                if name == "deid library" and round_number > args.deid_rounds:
                    continue
                if name == "deid library" and round_number == 0:
                    continue  # its warm-up is a round of its own: too slow to waste
                elapsed = timed(contenders[name], env, work / outputs[name])
                if round_number > 0 or name == "deid library":
                    times[name].append(elapsed)
            print(f"round {round_number}{' (warm-up)' if round_number == 0 else ''} done",
                  flush=True)

        medians = {name: statistics.median(values) for name, values in times.items() if values}
        print()
        for name, median in medians.items():
            print(f"{name:>22}: median {median:7.3f} s over {len(times[name])} runs "
                  f"({', '.join(f'{v:.3f}' for v in times[name])})")
        ours = medians["ours"]
        print()
        print(f"deid library / ours        = {medians['deid library'] / ours:6.1f}   (goal >= 5)")
        print(f"copy (cp -r) / ours        = {medians['copy (cp -r)'] / ours:6.2f}   (goal >= 0.6)")
        print(f"copy (python shutil) / ours = {medians['copy (python shutil)'] / ours:5.2f}")
        print(f"copy (cp -r) / ours (1 process) = "
              f"{medians['copy (cp -r)'] / medians['ours (1 process)']:.2f}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
