"""`dicom-ops emulator` refuses what it cannot run with, in one clear line, before serving."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def _emulator(*args: str, data_dir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dicom_ops.cli", "emulator", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (["--fault", "explode=1"], "--fault explode=1: unknown fault 'explode'"),
    (["--fault", "busy=-5"], "--fault busy=-5: fault busy='-5': must be a number of seconds"),
    (["--delay", "-1"], "--delay must be >= 0 seconds"),
    (["--max-unpacked-size", "lots"], "--max-unpacked-size 'lots' is not a size"),
])
def test_a_bad_option_stops_the_emulator_with_a_clear_error(tmp_path, args, message):
    result = _emulator("--port", "0", *args, data_dir=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_already_in_use_is_named(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _emulator("--port", str(port), data_dir=tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
