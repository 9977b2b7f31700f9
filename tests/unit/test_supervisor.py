"""The supervisor restarts a dying child with backoff, logs it, and stops everything."""

import io
import logging
import sys
import threading
import time

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
