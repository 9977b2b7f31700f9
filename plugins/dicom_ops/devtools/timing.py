"""Timing whole commands for the benches in ``bench/``: each contender and its anchor
run as processes, from a cold output folder, the same way."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path


def timed(command: list[str], env: dict[str, str], output: Path) -> float:
    """Seconds ``command`` took, after emptying ``output`` and flushing dirty pages (so a
    contender never pays for the previous one's writeback); a failing command stops the
    bench with its stderr, since a time of a failure is no figure."""
    shutil.rmtree(output, ignore_errors=True)
    os.sync()
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{result.stderr[-2000:]}")
    return elapsed


def percentile_95(values: list[float]) -> float:
    """The 95th percentile, interpolated between the closest ranks."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]
