"""Cluster benchmark: a burst of patients through 1 Celery worker, then through 2.

Starts `dicom-ops cluster` (PostgreSQL, Redis, Airflow's parts, the listener and the
emulator) on free ports, first with one worker and then, from scratch, with two; each
time sends a burst of synthetic CT series (one patient each) with dcmtk's `storescu`
as fast as it takes them, and waits until every RTSTRUCT is in its origin folder.

Reports per run: series per minute (burst size / time from the first C-STORE to the
last RTSTRUCT), p50 and p95 turnaround per series (its last C-STORE to its RTSTRUCT on
disk, the quiet period included), and the worker-seconds the pipeline's tasks took per
series (from Airflow's task instances). The anchor is the 1-worker run of the same
invocation: the ratio 2-worker / 1-worker throughput says how far a second worker helps
on this machine.

    .venv/bin/python bench/cluster.py [--patients 20] [--slices 60] [--quiet 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dicom_ops.devtools.dcmtk import DcmtkMissing, require_dcmtk  # noqa: E402
from dicom_ops.devtools.synthetic import (  # noqa: E402
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    write_series,
)
from dicom_ops.devtools.timing import percentile_95  # noqa: E402

from tests.support.cluster import RunningCluster, start_cluster  # noqa: E402

TASK_SECONDS = """
    SELECT task_id, sum(extract(epoch FROM end_date - start_date)) FROM task_instance
    WHERE dag_id IN ('draw_export', 'draw_import') AND state = 'success'
    GROUP BY task_id"""



def _burst(storescu: str, workers: int, patients: int, slices: int, quiet: int,
           folder: Path) -> dict:
    cluster = start_cluster({"DICOM_OPS_QUIET_SECONDS": str(quiet),
                             "DICOM_OPS_CLUSTER_WORKERS": str(workers),
                             "DICOM_OPS_EMULATOR_DELAY_SECONDS": "0"})
    try:
        cluster.wait_healthy(timeout=300, workers=workers)
        _wait_for(cluster, 1, timeout=300)  # the first-start demo series, out of the way
        series = []
        for index in range(patients):
            cts = make_ct_series(synthetic_patient(200 + index),
                                 SeriesGeometry(slices=slices, rows=256, columns=256))
            series.append((cts[0], write_series(cts, folder / f"w{workers}-p{index}")))
        sent_at: dict[str, float] = {}
        started = time.time()
        for ct, files in series:
            subprocess.run([storescu, "-aet", "CT_SIM", "-aec", "DRAWCLIENT", "127.0.0.1",
                            str(cluster.listener_port), *map(str, files)], check=True,
                           capture_output=True, timeout=300)
            sent_at[ct.SeriesInstanceUID] = time.time()
        done = _wait_for(cluster, patients + 1, timeout=1800)
        turnaround = [done[uid] - sent for uid, sent in sent_at.items()]
        elapsed = max(done[uid] for uid in sent_at) - started
        task_seconds = {task: float(total) for task, total in cluster.query(TASK_SECONDS)}
    finally:
        cluster.stop()
        cluster.remove()
    return {"workers": workers, "series_per_minute": patients / elapsed * 60,
            "p50": statistics.median(turnaround), "p95": percentile_95(turnaround),
            "worker_seconds_per_series": sum(task_seconds.values()) / (patients + 1),
            "tasks": task_seconds}


def _wait_for(cluster: RunningCluster, count: int, timeout: float) -> dict[str, float]:
    """Series UID -> when its RTSTRUCT appeared, once ``count`` have."""
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        for path in (cluster.data_root / "datastore").glob("*/*/RS.*.dcm"):
            seen.setdefault(path.parent.name, path.stat().st_mtime)
        if len(seen) >= count:
            return seen
        time.sleep(1)
    raise SystemExit(f"only {len(seen)} of {count} RTSTRUCTs after {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--quiet", type=int, default=5, help="DICOM_OPS_QUIET_SECONDS")
    args = parser.parse_args()
    try:
        storescu = require_dcmtk("storescu")
    except DcmtkMissing as exc:
        print(f"skipped: {exc}")
        return 0
    import tempfile

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder:
        for workers in (1, 2):
            result = _burst(storescu, workers, args.patients, args.slices, args.quiet,
                            Path(folder))
            results.append(result)
            print(f"{workers} worker(s): {result['series_per_minute']:.1f} series/min, "
                  f"turnaround p50 {result['p50']:.0f} s, p95 {result['p95']:.0f} s, "
                  f"{result['worker_seconds_per_series']:.1f} worker-s of tasks per series",
                  flush=True)
            print("  task seconds:", {k: round(v) for k, v in sorted(result["tasks"].items())})
    one, two = results
    print(f"2 workers / 1 worker throughput: "
          f"{two['series_per_minute'] / one['series_per_minute']:.2f} "
          f"({args.patients} patients of {args.slices} slices 256x256, quiet {args.quiet} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
