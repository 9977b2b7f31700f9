"""Start the real native cluster (`dicom-ops cluster`, what `make cluster` runs) on free
ports, find its processes, crash them, and read what Airflow recorded.

PostgreSQL runs as the ``postgres`` user under root, so the data root lives in a fresh
world-traversable folder (pytest's own temporary folders are private to root).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from tests.support.postgres import free_port


@dataclass
class RunningCluster:
    process: subprocess.Popen
    base: Path
    ports: dict[str, int]
    log_path: Path

    @property
    def data_root(self) -> Path:
        return self.base / "var"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def listener_port(self) -> int:
        return self.ports["listener"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def airflow_db(self):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.ports["postgres"], user="airflow",
                                dbname="airflow")

    def app_db_url(self) -> str:
        return f"postgresql+psycopg2://dicom_ops@127.0.0.1:{self.ports['postgres']}/dicom_ops"

    def query(self, sql: str, *params: object) -> list[tuple]:
        connection = self.airflow_db()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()

    def wait_healthy(self, timeout: float, workers: int = 2) -> None:
        """Airflow's parts healthy and every Celery worker ready."""
        deadline = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"cluster exited early:\n{self.log()[-6000:]}")
            try:
                last = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
                parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                healthy = all(last.get(p, {}).get("status") == "healthy" for p in parts)
                ready = set(re.findall(r"\b(worker-\d+)@\S+ ready\.", self.log()))
                if healthy and {f"worker-{n}" for n in range(1, workers + 1)} <= ready:
                    return
            except requests.RequestException:
                pass
            time.sleep(2)
        raise AssertionError(f"not healthy after {timeout}s: {last}\n{self.log()[-6000:]}")

    # --- processes -----------------------------------------------------------------------

    def _ours(self) -> list[psutil.Process]:
        """Everything the cluster started (its programs and their children). Not found by
        environment: celery rewrites its process title over /proc/<pid>/environ."""
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def program(self, words: str) -> psutil.Process:
        """The supervised program (a child of the supervisor) whose command line holds
        ``words``."""
        try:
            programs = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            programs = []
        for process in programs:
            try:
                if words in " ".join(process.cmdline()):
                    return process
            except psutil.Error:
                continue
        raise AssertionError(f"no running process with {words!r}")

    def worker(self, number: int) -> psutil.Process:
        # celery rewrites its process title ("[celeryd: worker-1@host:MainProcess] ..."),
        # so the name, not the option, is what its command line still shows.
        return self.program(f"worker-{number}@")

    def worker_running(self, task_pid: int) -> int | None:
        """Which worker (1, 2, ...) a task process runs under."""
        try:
            chain = [psutil.Process(task_pid), *psutil.Process(task_pid).parents()]
        except psutil.Error:
            return None
        for process in chain:
            match = re.search(r"\bworker-(\d+)@", " ".join(process.cmdline()))
            if match:
                return int(match.group(1))
        return None

    def crash(self, process: psutil.Process) -> None:
        """kill -9 of a program and everything it started, as a host losing power would."""
        victims = [process, *process.children(recursive=True)]
        for victim in victims:
            try:
                victim.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        leftovers = self._ours()
        code = self.process.wait()
        for leftover in leftovers:  # never leave a server of this cluster running
            try:
                leftover.kill()
            except psutil.Error:
                pass
        return code

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def start_cluster(extra_env: dict[str, str] | None = None) -> RunningCluster:
    base = Path(tempfile.mkdtemp(prefix="dicom-ops-cluster-"))
    os.chmod(base, 0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DICOM_OPS_", "AIRFLOW"))}
    ports = {name: free_port() for name in
             ("api", "listener", "emulator", "logs", "trigger", "postgres", "redis")}
    env.update({
        "DICOM_OPS_DATA_ROOT": str(base / "var"),
        "DICOM_OPS_LISTENER_PORT": str(ports["listener"]),
        "DICOM_OPS_EMULATOR_PORT": str(ports["emulator"]),
        "DICOM_OPS_CLUSTER_POSTGRES_PORT": str(ports["postgres"]),
        "DICOM_OPS_CLUSTER_REDIS_PORT": str(ports["redis"]),
        "AIRFLOW__API__PORT": str(ports["api"]),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger"]),
        **(extra_env or {}),
    })
    log_path = base / "cluster.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dicom_ops.cli", "cluster"], env=env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return RunningCluster(process, base, ports, log_path)
