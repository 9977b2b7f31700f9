"""Ingest benchmark: our listener against dcmtk's storescp, same series, same run.

Each round sends one synthetic CT series (default 200 slices of 512x512) with
`storescu` in one association, to storescp (TCP_NODELAY=1, or Nagle's algorithm
makes it ~30x slower) and to `dicom-ops listener` (full path: header parse,
atomic fsynced writes, completion tracking, app DB), alternating which goes
first. A fresh series per round, so our duplicate check never short-cuts a
write. Reports the medians and the ratio storescp-time / our-time (goal >= 0.5),
plus, for information, how long after the send our series was ready (quiet
period included).

    .venv/bin/python bench/ingest.py [--rounds 5] [--slices 200] [--size 512]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dicom_ops.db.models import Series
from dicom_ops.db.session import session_scope, upgrade
from dicom_ops.devtools.dcmtk import DcmtkMissing, require_dcmtk, version_banner
from dicom_ops.devtools.synthetic import (
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    write_series,
)
from sqlalchemy import select

BIN = Path(sys.executable).parent
QUIET_SECONDS = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


def send(storescu: str, port: int, folder: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run([storescu, "-aec", "BENCH", "-aet", "BENCHSCU", "127.0.0.1",
                             str(port), "+sd", str(folder)], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"storescu failed: {result.stderr[-500:]}")
    return elapsed


def wait_ready(db_url: str, series_uid: str, timeout: float = 60) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with session_scope(db_url) as session:
            state = session.scalar(select(Series.state).where(Series.series_uid == series_uid))
        if state == "ready":
            return time.perf_counter() - started
        time.sleep(0.05)
    raise SystemExit("our series did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    # The anchor must be dcmtk itself, by absolute path: pynetdicom's Python storescp in the
    # venv's bin would otherwise stand in for it whenever the venv is on PATH.
    try:
        storescu, storescp = require_dcmtk("storescu"), require_dcmtk("storescp")
    except DcmtkMissing as missing:
        raise SystemExit(str(missing)) from None
    for tool in (storescu, storescp):
        print(f"anchor: {tool}: {version_banner(tool)}")

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        base = Path(tmp)
        geometry = SeriesGeometry(slices=args.slices, rows=args.size, columns=args.size,
                                  pixel_spacing=480.0 / args.size)
        inputs, series_uids = [], []
        print(f"writing {args.rounds} series of {args.slices} slices {args.size}x{args.size} ...")
        for number in range(args.rounds):
            datasets = make_ct_series(synthetic_patient(100 + number), geometry)
            folder = base / "input" / f"round{number}"
            write_series(datasets, folder)
            inputs.append(folder)
            series_uids.append(str(datasets[0].SeriesInstanceUID))

        data_root = base / "ours"
        db_url = f"sqlite:///{data_root / 'dicom_ops.sqlite'}"
        upgrade(db_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_OPS_")}
        env.update({"DICOM_OPS_DATA_ROOT": str(data_root), "DICOM_OPS_DB_URL": db_url,
                    "DICOM_OPS_QUIET_SECONDS": str(QUIET_SECONDS),
                    "DICOM_OPS_MIN_FREE_DISK": "0", "DICOM_OPS_LOG_LEVEL": "WARNING",
                    "DICOM_OPS_ALLOWED_AETS": "BENCHSCU"})
        our_port, their_port = free_port(), free_port()
        storescp_out = base / "storescp"
        storescp_out.mkdir()
        ours = subprocess.Popen([str(BIN / "dicom-ops"), "listener", "--port", str(our_port)],
                                env=env)
        theirs = subprocess.Popen([storescp, "-od", str(storescp_out), str(their_port)],
                                  env=dict(os.environ, TCP_NODELAY="1"))
        try:
            wait_for_port(our_port, ours)
            wait_for_port(their_port, theirs)
            our_times, their_times, ready_after = [], [], []
            for number, folder in enumerate(inputs):
                order = ["theirs", "ours"] if number % 2 == 0 else ["ours", "theirs"]
                for who in order:
                    if who == "theirs":
                        their_times.append(send(storescu, their_port, folder))
                        shutil.rmtree(storescp_out)
                        storescp_out.mkdir()
                    else:
                        our_times.append(send(storescu, our_port, folder))
                        ready_after.append(wait_ready(db_url, series_uids[number]))
                print(f"round {number + 1}: storescp {their_times[-1]:.2f} s, "
                      f"ours {our_times[-1]:.2f} s")
        finally:
            for process in (ours, theirs):
                process.terminate()
                process.wait(timeout=30)

    ours_median = statistics.median(our_times)
    theirs_median = statistics.median(their_times)
    print(f"\n{args.slices} slices of {args.size}x{args.size}, one association, "
          f"median of {args.rounds} rounds")
    print(f"  storescp (TCP_NODELAY=1)  {theirs_median:.3f} s")
    print(f"  dicom-ops listener        {ours_median:.3f} s")
    print(f"  ratio storescp/ours       {theirs_median / ours_median:.2f}  (goal >= 0.5)")
    print(f"  ready after the send      {statistics.median(ready_after):.2f} s "
          f"(quiet period {QUIET_SECONDS} s included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
