"""`make run`'s stack comes up healthy on 127.0.0.1, its first runs succeed, and Ctrl-C
stops all of it."""

import sqlite3
import time
from pathlib import Path

import psutil
import pytest

from tests.support.stack import start_stack

pytestmark = pytest.mark.slow

# scheduled to run as soon as the stack is up: the tasks a first start's race would fail
FIRST_RUNS = ("draw_cleanup", "draw_watchdog")
ENDED = ("success", "failed", "upstream_failed", "skipped")


def _first_run_states(airflow_db: Path, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        with sqlite3.connect(airflow_db) as connection:
            rows = connection.execute(
                "SELECT ti.dag_id, ti.state FROM task_instance ti JOIN dag_run run "
                "ON run.dag_id = ti.dag_id AND run.run_id = ti.run_id "
                "WHERE ti.dag_id IN (?, ?) ORDER BY run.id", FIRST_RUNS).fetchall()
        states = {}
        for dag_id, state in rows:
            states.setdefault(dag_id, state)
        if len(states) == len(FIRST_RUNS) and all(s in ENDED for s in states.values()):
            return states
        time.sleep(2)
    return states


def _processes_of(data_root: Path) -> list[str]:
    """Live processes whose environment names the stack's data root: every program of the
    stack and everything they start (Airflow's scheduler, executor workers, tasks)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if str(data_root) in " ".join(process.environ().values()):
                found.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.Error:  # ended meanwhile, or another user's
            continue
    return found


def test_stack_becomes_healthy_and_stops_on_ctrl_c(tmp_path):
    stack = start_stack(tmp_path / "var")
    try:
        health = stack.wait_healthy(timeout=240)
        assert health["scheduler"]["status"] == "healthy"
        password_file = stack.data_root / "airflow" / "simple_auth_manager_passwords.json.generated"
        assert password_file.exists()
        assert (stack.data_root / "env.sh").exists()
        # the first runs, started while the API server may still be coming up, succeed
        states = _first_run_states(stack.data_root / "airflow" / "airflow.db", timeout=180)
        assert states == dict.fromkeys(FIRST_RUNS, "success"), stack.airflow_log()[-5000:]
        assert len(_processes_of(stack.data_root)) >= 5  # the check below sees the stack
    finally:
        code = stack.stop()
    assert code == 0
    assert "all processes stopped" in stack.log()
    assert _processes_of(stack.data_root) == []  # no scheduler left behind, holding the DB
