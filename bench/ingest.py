"""Ingest benchmark: our listener against dcmtk's storescp, same series, same run.

Two figures, each with its anchor measured in the same run, alternating which goes
first, a fresh series every round (so our duplicate check never short-cuts a write),
dirty pages flushed before every send (so no one pays for the other's writeback):

- one association: one synthetic CT series (default 200 slices of 512x512) sent with
  dcmtk's `storescu`, against `storescp` (goal: storescp-time / our-time >= 0.8);
- concurrent: 10 `storescu` at once, one series of 50 slices each, against
  `storescp --fork` (a process per association; goal >= 0.8).

storescp runs with TCP_NODELAY=1 (without it Nagle's algorithm makes it ~30x slower).
Ours is the full path: `dicom-ops listener` (header parse, atomic writes fsynced
before the association's release is answered, completion tracking, app DB). Also
reported, for information: how long after the send our series was ready (the quiet
period included).

    .venv/bin/python bench/ingest.py [--rounds 5] [--slices 200] [--size 512]
                                     [--senders 10] [--sender-slices 50]
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

from dicom_ops.config import load_settings
from dicom_ops.data_root import stamp as stamp_data_root
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


def send(storescu: str, port: int, folders: list[Path]) -> float:
    """Seconds until every folder is sent, one `storescu` (one association) per folder,
    all at once."""
    os.sync()
    started = time.perf_counter()
    senders = [subprocess.Popen([storescu, "-aec", "BENCH", "-aet", "BENCHSCU", "127.0.0.1",
                                 str(port), "+sd", str(folder)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for folder in folders]
    errors = [sender.communicate()[1] for sender in senders]
    elapsed = time.perf_counter() - started
    for sender, error in zip(senders, errors, strict=True):
        if sender.returncode != 0:
            raise SystemExit(f"storescu failed: {error[-500:]}")
    return elapsed


def wait_ready(db_url: str, series_uids: list[str], timeout: float = 120) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with session_scope(db_url) as session:
            states = session.scalars(select(Series.state)
                                     .where(Series.series_uid.in_(series_uids))).all()
        if len(states) == len(series_uids) and set(states) == {"ready"}:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise SystemExit("our series did not become ready")


def write_inputs(base: Path, rounds: int, per_round: int, slices: int, size: int,
                 first_patient: int) -> list[list[tuple[Path, str]]]:
    """``rounds`` lists of ``per_round`` (folder, series UID), each a new patient."""
    geometry = SeriesGeometry(slices=slices, rows=size, columns=size, pixel_spacing=480.0 / size)
    inputs = []
    for number in range(rounds):
        batch = []
        for sender in range(per_round):
            patient = first_patient + number * per_round + sender
            datasets = make_ct_series(synthetic_patient(patient), geometry)
            folder = base / f"patient{patient}"
            write_series(datasets, folder)
            batch.append((folder, str(datasets[0].SeriesInstanceUID)))
        inputs.append(batch)
    return inputs


def compare(label: str, storescu: str, ours: tuple[int, str], theirs: tuple[int, Path],
            inputs: list[list[tuple[Path, str]]]) -> dict[str, float]:
    (our_port, db_url), (their_port, their_out) = ours, theirs
    our_times, their_times, ready_after = [], [], []
    for number, batch in enumerate(inputs):
        folders = [folder for folder, _ in batch]
        for who in (["theirs", "ours"] if number % 2 == 0 else ["ours", "theirs"]):
            if who == "theirs":
                their_times.append(send(storescu, their_port, folders))
                shutil.rmtree(their_out)
                their_out.mkdir()
            else:
                our_times.append(send(storescu, our_port, folders))
                ready_after.append(wait_ready(db_url, [uid for _, uid in batch]))
        print(f"{label} round {number + 1}: storescp {their_times[-1]:.2f} s, "
              f"ours {our_times[-1]:.2f} s")
    return {"theirs": statistics.median(their_times), "ours": statistics.median(our_times),
            "ready": statistics.median(ready_after)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--sender-slices", type=int, default=50)
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
        print(f"writing {args.rounds} series of {args.slices} slices and {args.rounds} x "
              f"{args.senders} of {args.sender_slices} ({args.size}x{args.size}) ...")
        single = write_inputs(base / "single", args.rounds, 1, args.slices, args.size, 100)
        concurrent = write_inputs(base / "concurrent", args.rounds, args.senders,
                                  args.sender_slices, args.size, 1000)

        data_root = base / "ours"
        db_url = f"sqlite:///{data_root / 'dicom_ops.sqlite'}"
        upgrade(db_url)
        # as `dicom-ops db upgrade` does: the listener refuses a data root without its identity
        stamp_data_root(load_settings({}, data_root=data_root, db_url=db_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_OPS_")}
        env.update({"DICOM_OPS_DATA_ROOT": str(data_root), "DICOM_OPS_DB_URL": db_url,
                    "DICOM_OPS_QUIET_SECONDS": str(QUIET_SECONDS),
                    "DICOM_OPS_MIN_FREE_DISK": "0", "DICOM_OPS_LOG_LEVEL": "WARNING",
                    "DICOM_OPS_ALLOWED_AETS": "BENCHSCU"})
        ports = {name: free_port() for name in ("ours", "storescp", "fork")}
        outputs = {name: base / name for name in ("storescp", "fork")}
        for folder in outputs.values():
            folder.mkdir()
        nodelay = dict(os.environ, TCP_NODELAY="1")
        servers = {
            "ours": subprocess.Popen([str(BIN / "dicom-ops"), "listener",
                                      "--port", str(ports["ours"])], env=env),
            "storescp": subprocess.Popen([storescp, "-od", str(outputs["storescp"]),
                                          str(ports["storescp"])], env=nodelay),
            "fork": subprocess.Popen([storescp, "--fork", "-od", str(outputs["fork"]),
                                      str(ports["fork"])], env=nodelay),
        }
        try:
            for name, server in servers.items():
                wait_for_port(ports[name], server)
            ours = (ports["ours"], db_url)
            one = compare("one association", storescu, ours,
                          (ports["storescp"], outputs["storescp"]), single)
            many = compare(f"{args.senders} associations", storescu, ours,
                           (ports["fork"], outputs["fork"]), concurrent)
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(timeout=30)

    print(f"\nmedians of {args.rounds} rounds, {args.size}x{args.size} CT")
    print(f"  one association, {args.slices} slices:")
    print(f"    storescp (TCP_NODELAY=1)         {one['theirs']:.3f} s")
    print(f"    dicom-ops listener               {one['ours']:.3f} s")
    print(f"    ratio storescp/ours              {one['theirs'] / one['ours']:.2f}  (goal >= 0.8)")
    print(f"    ready after the send             {one['ready']:.2f} s "
          f"(quiet period {QUIET_SECONDS} s included)")
    print(f"  {args.senders} associations at once, {args.sender_slices} slices each:")
    print(f"    storescp --fork (TCP_NODELAY=1)  {many['theirs']:.3f} s")
    print(f"    dicom-ops listener               {many['ours']:.3f} s")
    print(f"    ratio storescp/ours              {many['theirs'] / many['ours']:.2f}  "
          "(goal >= 0.8)")
    print(f"    all ready after the send         {many['ready']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
