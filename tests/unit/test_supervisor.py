"""The supervisor restarts a dying child with backoff, logs it, and stops everything."""

import io
import json
import logging
import sys
import threading
import time
from pathlib import Path

from dicom_ops.supervisor import Program, Supervisor


def _run_for(supervisor: Supervisor, seconds: float) -> None:
    thread = threading.Thread(target=supervisor.run, kwargs={"install_signal_handlers": False})
    thread.start()
    time.sleep(seconds)
    supervisor.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_child_that_dies_is_restarted_with_growing_backoff_and_logged(tmp_path, caplog):
    counter = tmp_path / "starts"
    crash = Program("crashy", [sys.executable, "-c",
                               f"open({str(counter)!r}, 'a').write('x'); raise SystemExit(3)"])
    supervisor = Supervisor([crash], min_backoff=0.2, max_backoff=0.8, stable_after=60,
                            output=io.StringIO())
    with caplog.at_level(logging.WARNING, logger="dicom_ops.supervisor"):
        _run_for(supervisor, 3.0)
    starts = len(counter.read_text())
    assert 3 <= starts <= 8  # backoff 0.2, 0.4, 0.8, 0.8 ... not a tight loop
    assert "crashy exited with code 3" in caplog.text
    assert "restarting crashy (restart #1)" in caplog.text


def test_stop_terminates_every_child_and_relays_their_output(tmp_path):
    script = "import time; print('hello from child', flush=True); time.sleep(600)"
    output = io.StringIO()
    supervisor = Supervisor([Program("a", [sys.executable, "-c", script]),
                             Program("b", [sys.executable, "-c", script])], output=output)
    _run_for(supervisor, 1.5)
    assert all(child.process is None or child.process.poll() is not None
               for child in supervisor.children)
    lines = output.getvalue().splitlines()
    assert any(line.startswith("a ") and "hello from child" in line for line in lines)
    assert any(line.startswith("b ") and "hello from child" in line for line in lines)


def test_a_one_shot_program_runs_once(tmp_path):
    counter = tmp_path / "starts"
    once = Program("once", [sys.executable, "-c", f"open({str(counter)!r}, 'a').write('x')"],
                   restart=False)
    supervisor = Supervisor([once], min_backoff=0.1, output=io.StringIO())
    _run_for(supervisor, 1.5)
    assert counter.read_text() == "x"


def test_a_chatty_program_writes_to_its_log_file_and_the_console_says_where(tmp_path):
    script = "import time; print('flood of scheduler lines', flush=True); time.sleep(600)"
    log_file = tmp_path / "logs" / "airflow.log"
    output = io.StringIO()
    supervisor = Supervisor([Program("airflow", [sys.executable, "-c", script], log_file=log_file),
                             Program("ours", [sys.executable, "-c", "print('event line')"],
                                     restart=False)], output=output)
    _run_for(supervisor, 1.5)
    console = output.getvalue()
    assert "flood of scheduler lines" not in console
    assert f"airflow    | output in {log_file}" in console and "ours       | event line" in console
    assert "flood of scheduler lines" in log_file.read_text()


def test_a_log_file_past_its_limit_is_kept_once_as_dot_1_at_the_next_start(tmp_path):
    log_file = tmp_path / "airflow.log"
    log_file.write_text("old run " * 100)
    (tmp_path / "airflow.log.1").write_text("older run")
    supervisor = Supervisor([Program("airflow", [sys.executable, "-c", "print('new run')"],
                                     restart=False, log_file=log_file)],
                            output=io.StringIO(), log_file_limit=100)
    _run_for(supervisor, 1.0)
    assert (tmp_path / "airflow.log.1").read_text().startswith("old run")
    assert log_file.read_text() == "new run\n"


# A stand-in for `airflow standalone`: it starts a scheduler-like child in its own process
# group that ignores SIGTERM (as a scheduler whose executor waits for a task), a task-like
# child in a group of its own (as Airflow's task processes) and a child that shuts down
# cleanly in 0.3 s, records their pids, then waits, or exits at once on its first run
# when asked to crash.
LEADER = r"""
import json, signal, subprocess, sys, time
from pathlib import Path

pids_file, crash_marker = Path(sys.argv[1]), Path(sys.argv[2])
READY = "import sys; print('ready', flush=True); "
def start(code, **kwargs):
    child = subprocess.Popen([sys.executable, "-c", READY + code], stdout=subprocess.PIPE,
                             **kwargs)
    child.stdout.readline()
    return child.pid

lingering = start("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                  "time.sleep(600)")
task = start("import time; time.sleep(600)", process_group=0)
graceful = start("import signal, sys, time\n"
                 "def end(*_):\n"
                 "    time.sleep(0.3); open(sys.argv[1], 'w').write('ended cleanly'); sys.exit(0)\n"
                 "signal.signal(signal.SIGTERM, end)\n"
                 "time.sleep(600)\n" .replace("sys.argv[1]", repr(str(pids_file) + ".graceful")))
first_run = not pids_file.exists()
pids_file.write_text(json.dumps({"lingering": lingering, "task": task, "graceful": graceful}))
if crash_marker.exists() and first_run:
    sys.exit(1)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie (this machine's init may never reap an orphan)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_for_pids(pids_file: Path, timeout: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pids_file.exists() and pids_file.read_text():
            return json.loads(pids_file.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{pids_file} was not written")


def _leader(tmp_path: Path) -> tuple[Program, Path]:
    script = tmp_path / "leader.py"
    script.write_text(LEADER)
    pids_file = tmp_path / "pids.json"
    return Program("airflow", [sys.executable, str(script), str(pids_file),
                               str(tmp_path / "crash")]), pids_file


def test_stop_ends_what_a_child_left_running_after_the_timeout(tmp_path, caplog):
    program, pids_file = _leader(tmp_path)
    supervisor = Supervisor([program], stop_timeout=2.0, output=io.StringIO())
    thread = threading.Thread(target=supervisor.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        pids = _wait_for_pids(pids_file)
    finally:
        with caplog.at_level(logging.WARNING, logger="dicom_ops.supervisor"):
            supervisor.stop()
            thread.join(timeout=30)
    assert not thread.is_alive()
    assert not any(_alive(pid) for pid in pids.values()), pids
    # the one that shuts down cleanly was given its time; the other two were killed
    assert Path(str(pids_file) + ".graceful").read_text() == "ended cleanly"
    assert "airflow: 2 of its processes still ran 2s after SIGTERM; killed" in caplog.text


def test_a_crashed_child_is_restarted_only_once_what_it_left_has_ended(tmp_path, caplog):
    program, pids_file = _leader(tmp_path)
    (tmp_path / "crash").touch()
    supervisor = Supervisor([program], min_backoff=0.1, stop_timeout=1.0, output=io.StringIO())
    thread = threading.Thread(target=supervisor.run, kwargs={"install_signal_handlers": False})
    with caplog.at_level(logging.WARNING, logger="dicom_ops.supervisor"):
        thread.start()
        try:
            first_run = _wait_for_pids(pids_file)
            deadline = time.monotonic() + 30
            while supervisor.children[0].restarts == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            restarted = supervisor.children[0].restarts
            left_over = [name for name, pid in first_run.items() if _alive(pid)]
        finally:
            supervisor.stop()
            thread.join(timeout=30)
    assert restarted == 1
    assert left_over == []  # the restarted stack never ran beside the old one's processes
    assert "airflow exited and left processes running: stopping them" in caplog.text
    assert "airflow: killed 2 processes of its previous run before restarting it" in caplog.text
