"""Start the real embedded stack (`dicom-ops stack`, what `make run` runs) on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.postgres import free_port


@dataclass
class RunningStack:
    process: subprocess.Popen
    data_root: Path
    api_port: int
    listener_port: int
    emulator_port: int
    log_path: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def log(self) -> str:
        """The console of `make run`; Airflow's own output is in ``airflow_log()``."""
        return self.log_path.read_text(errors="replace")

    def airflow_log(self) -> str:
        path = self.data_root / "logs" / "airflow.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def health(self) -> dict:
        return requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()

    def wait_healthy(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"stack exited early:\n{self.log()[-5000:]}")
            try:
                last = self.health()
                parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                if all(last.get(p, {}).get("status") == "healthy" for p in parts):
                    return last
            except requests.RequestException:
                pass
            time.sleep(2)
        raise AssertionError(f"not healthy after {timeout}s: {last}\n{self.log()[-3000:]}\n"
                             f"airflow's log:\n{self.airflow_log()[-3000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait()


def start_stack(data_root: Path, extra_env: dict[str, str] | None = None) -> RunningStack:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DICOM_OPS_", "AIRFLOW"))}
    ports = {name: free_port() for name in ("api", "listener", "emulator", "logs", "trigger")}
    env.update({
        "DICOM_OPS_DATA_ROOT": str(data_root),
        "DICOM_OPS_LISTENER_PORT": str(ports["listener"]),
        "DICOM_OPS_EMULATOR_PORT": str(ports["emulator"]),
        "AIRFLOW__API__PORT": str(ports["api"]),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger"]),
        **(extra_env or {}),
    })
    log_path = data_root.parent / "stack.log"
    data_root.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dicom_ops.cli", "stack"], env=env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return RunningStack(process, data_root, ports["api"], ports["listener"], ports["emulator"],
                        log_path)
