"""The emulator segments in a child process at the lowest CPU priority, beside its API
(which then answers while a task is processed, as a real server's does), and a kill -9
of the emulator leaves no such child behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.support.emulator import make_upload, start_emulator

COMPLETED = "SEGMENTATION COMPLETED"


def _children(pid: int) -> list[int]:
    """Every child of ``pid``, whichever of its threads started it."""
    return [int(child) for thread in Path(f"/proc/{pid}/task").iterdir()
            for child in (thread / "children").read_text().split()]


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def test_segmentation_runs_in_a_child_that_ends_with_a_killed_emulator(tmp_path):
    emulator = start_emulator(tmp_path)
    try:
        zip_path, checksum, _ = make_upload(tmp_path)
        answer = emulator.upload(zip_path, checksum)
        assert answer.status_code == 200
        assert emulator.wait_for_status(answer.json()["task_id"])["status"] == COMPLETED
        # the task was segmented by a child process, not in the API's own process
        children = _children(emulator.process.pid)
        [child] = [pid for pid in children if "multiprocessing.spawn" in _cmdline(pid)]
        # at the lowest CPU priority: it stands in for the server's own hardware
        assert _niceness(child) == 19
        # when the emulator is killed without a chance to stop it
        os.kill(emulator.process.pid, signal.SIGKILL)
        emulator.process.wait(timeout=10)
        # then its children go too, rather than waiting forever for work
        deadline = time.monotonic() + 20
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, children))
    finally:
        emulator.stop()
