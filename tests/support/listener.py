"""The listener as a real subprocess on a free loopback port, and dcmtk clients to feed it.

``start_listener(**env)`` (fixture): starts ``dicom-ops listener`` with the test
settings (``cli_env``) plus ``DICOM_OPS_*`` overrides and returns a
``ListenerProcess`` with ``port``, ``log()``, ``stop()``, ``kill()`` and
``start()`` (again, on the same port). ``storescu``/``echoscu`` run dcmtk's
clients (by absolute path: ``dcmtk.dcmtk_tool``); ``wait_until`` polls a condition;
``series_rows`` reads the app DB.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dicom_ops.db.models import Series
from dicom_ops.db.session import session_scope
from sqlalchemy import select

from tests.support.dcmtk import dcmtk_tool
from tests.support.postgres import free_port

SCANNER_AET = "CT_SCANNER"


@dataclass
class ListenerProcess:
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen | None = None
    _log_handles: list = field(default_factory=list)

    def start(self, timeout: float = 30) -> ListenerProcess:
        handle = open(self.log_path, "ab")
        self._log_handles.append(handle)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dicom_ops.cli", "listener", "--port", str(self.port)],
            env=self.env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        starts = self.log().count("listening on")
        wait_until(lambda: self.log().count("listening on") > starts or self.process.poll(),
                   timeout, "the listener did not start")
        if self.process.poll() is not None:
            raise AssertionError(f"the listener exited:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, as the supervisor stops it."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing cleaned up."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None

    def close(self) -> None:
        self.kill()
        for handle in self._log_handles:
            handle.close()


@pytest.fixture
def start_listener(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., ListenerProcess]]:
    dcmtk_tool("storescu")
    started: list[ListenerProcess] = []

    def start(**overrides: str) -> ListenerProcess:
        env = dict(cli_env)
        env.update({f"DICOM_OPS_{k.upper()}": str(v) for k, v in overrides.items()})
        log_path = tmp_path / f"listener-{len(started)}.log"
        listener = ListenerProcess(env=env, port=free_port(), log_path=log_path)
        started.append(listener)
        return listener.start()

    yield start
    for listener in started:
        listener.close()


def storescu(port: int, files: Iterable[Path], *, calling_aet: str = SCANNER_AET,
             extra: Iterable[str] = (), check: bool = True) -> subprocess.CompletedProcess:
    """Send ``files`` in one association, in the order given (``-v``: statuses in stderr)."""
    command = [dcmtk_tool("storescu"), "-v", "--no-halt", "-aet", calling_aet, "-aec", "DRAWCLIENT",
               *extra, "127.0.0.1", str(port), *[str(f) for f in files]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"storescu failed ({result.returncode}):\n{result.stderr}")
    return result


def echoscu(port: int, *, calling_aet: str = SCANNER_AET,
            extra: Iterable[str] = ()) -> subprocess.CompletedProcess:
    command = [dcmtk_tool("echoscu"), "-aet", calling_aet, "-aec", "DRAWCLIENT", *extra,
               "127.0.0.1", str(port)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def wait_until(condition: Callable[[], object], timeout: float = 30, message: str = "",
               interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not met in time")
        time.sleep(interval)


def series_rows(db_url: str) -> dict[str, Series]:
    """Every series row, by Series Instance UID."""
    with session_scope(db_url) as session:
        return {s.series_uid: s for s in session.scalars(select(Series))}


def wait_ready(db_url: str, series_uids: Iterable[str], timeout: float = 30) -> dict[str, Series]:
    wanted = set(series_uids)

    def all_ready():
        rows = series_rows(db_url)
        if all(uid in rows and rows[uid].state == "ready" for uid in wanted):
            return rows
        return None

    return wait_until(all_ready, timeout, f"series not ready: {series_rows(db_url)}")


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())
