"""Prepare benchmark: the export's whole preparation step against `cp -r` and the deid
library, on noise-like pixel data and on the factory's phantom, in the same run.

Our step is what the pipeline runs for a job: read the series, de-identify
(``deidentify_and_check``, the egress check included, 2 worker processes), zip with the
template and sha256 (``pipeline.export._pack``), as one whole process. The anchors are
`cp -r` of the series folder and the deid library's ``replace_identifiers`` (no check,
no zip), each a whole process, alternating, same series. Prints the medians and the
ratios cp-time / ours (goal >= 0.5) and deid-time / ours.

    .venv/bin/python bench/prepare.py [--rounds 3] [--slices 300] [--size 512]
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

RECIPE = REPO_ROOT / "include" / "deid" / "deid.dicom"
SECRET = "bench-secret-0123456789abcdef"

PREPARE = """
import os, sys
from pathlib import Path
from dicom_ops.deid import DeidKeys, deidentify_and_check
from dicom_ops.deid.recipe import default_cache_dir, load_recipe
from dicom_ops.pipeline.export import _pack
source, target = Path(sys.argv[1]), Path(sys.argv[2])
recipe = load_recipe(sys.argv[3], cache_dir=default_cache_dir())
files = sorted(source.iterdir())
result = deidentify_and_check([(files, target / "deid" / "00")], recipe,
                              DeidKeys.from_secret(os.environ["SECRET"]), workers=2)
if result.violation is not None:
    raise SystemExit(str(result.violation))
_pack(target, result.files, "name: bench\\n")
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



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dicom-ops-bench-prepare-"))
    try:
        patient = synthetic_patient(0)
        geometry = SeriesGeometry(slices=args.slices, rows=args.size, columns=args.size,
                                  pixel_spacing=480 / args.size)
        phantom = make_ct_series(patient, geometry)
        write_series(phantom, work / "phantom")
        for dataset in phantom:  # noise: what a real CT's low bits look like to a zip
            dataset.PixelData = os.urandom(len(dataset.PixelData))
        write_series(phantom, work / "noise")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(SECRET=SECRET, PATIENT_ID=patient.patient_id, MESSAGELEVEL="ERROR",
                   XDG_CACHE_HOME=str(work / "cache"))
        for pixels in ("noise", "phantom"):
            source = work / pixels
            contenders = {
                "prepare (ours)": [sys.executable, "-c", PREPARE, str(source),
                                   str(work / "ours"), str(RECIPE)],
                "cp -r": ["cp", "-r", str(source), str(work / "copy")],
                "deid library": [sys.executable, "-c", DEID_LIBRARY, str(source),
                                 str(work / "deid"), str(RECIPE)],
            }
            outputs = {"prepare (ours)": "ours", "cp -r": "copy", "deid library": "deid"}
            times: dict[str, list[float]] = {name: [] for name in contenders}
            names = list(contenders)
            timed(contenders["prepare (ours)"], env, work / "ours")  # warm-up (page cache)
            for round_number in range(args.rounds):
                for name in names[round_number % 3:] + names[:round_number % 3]:
                    if name == "deid library" and round_number > 0:
                        continue  # one run: it is slow, and the ratio is large
                    times[name].append(timed(contenders[name], env, work / outputs[name]))
            medians = {name: statistics.median(values) for name, values in times.items()}
            print(f"\n{pixels} pixel data, {args.slices} slices of {args.size}x{args.size}:")
            for name, median in medians.items():
                print(f"  {name:>15}: {median:7.3f} s ({', '.join(f'{v:.3f}' for v in times[name])})")
            ours = medians["prepare (ours)"]
            print(f"  cp -r / ours        = {medians['cp -r'] / ours:5.2f}  (goal >= 0.5)")
            print(f"  deid library / ours = {medians['deid library'] / ours:5.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
