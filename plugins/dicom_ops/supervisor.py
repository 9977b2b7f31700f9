"""Run a group of processes as one: restart the ones that die, stop all on Ctrl-C.

Each child runs in its own session (so a terminal's Ctrl-C reaches only us and we
stop the children in order), its output is prefixed with its name (or, for a chatty
one such as Airflow, appended to its own log file), and a child
that exits is restarted after a backoff that doubles up to a ceiling and resets
once the child has stayed up for a while. Every restart is logged.

A child's session ends with it. `airflow standalone` runs the scheduler, the API server
and the rest as its own children, and Airflow gives each task process a process group
of its own. When standalone exits first, a scheduler still shutting down (its executor
waiting for a task that can no longer reach the API server) was left running with
nobody to stop it, holding the SQLite DB; after a restart there would be two. So what
is left of a child's session gets SIGTERM (its process group) when the child exits, and
SIGKILL (the whole session) before the child is started again or, at stop, once the stop
timeout has passed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

log = logging.getLogger("dicom_ops.supervisor")

PROC = Path("/proc")
KILL_WAIT = 10.0  # seconds for killed processes to be gone


@dataclass
class Program:
    name: str
    argv: Sequence[str]
    env: dict[str, str] | None = None
    restart: bool = True  # False: a one-shot job, run once to completion
    log_file: Path | None = None  # its output goes here, not to the console


@dataclass
class _Child:
    program: Program
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: float = 0.0
    restarts: int = 0
    done: bool = False
    # the session of an exited process that still had processes in it, until they end,
    # and when they get SIGKILL if they have not ended by then
    leftover_session: int | None = None
    leftovers_killed_at: float = 0.0
    readers: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        programs: Sequence[Program],
        *,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        stable_after: float = 60.0,
        stop_timeout: float = 20.0,
        output: TextIO | None = None,
        log_file_limit: int = 100 * 1024 * 1024,
    ) -> None:
        self.children = [_Child(p) for p in programs]
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.stop_timeout = stop_timeout
        self.output = output or sys.stdout
        self.log_file_limit = log_file_limit
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()

    def stop(self, *_args: object) -> None:
        self._stopping.set()

    def run(self, *, install_signal_handlers: bool = True) -> None:
        """Start every program and supervise until ``stop()`` (or SIGINT/SIGTERM)."""
        if install_signal_handlers:
            signal.signal(signal.SIGINT, self.stop)
            signal.signal(signal.SIGTERM, self.stop)
        for child in self.children:
            self._start(child)
        try:
            while not self._stopping.wait(0.2):
                self._tick(time.monotonic())
        finally:
            self._stop_all()

    def _tick(self, now: float) -> None:
        for child in self.children:
            if child.done:
                continue
            if child.process is None:
                if child.restart_at is not None and now >= child.restart_at:
                    if not self._end_leftovers(child, now):
                        continue  # the previous run is still shutting down
                    child.restarts += 1
                    log.warning("restarting %s (restart #%d)", child.program.name, child.restarts)
                    self._start(child)
                continue
            code = child.process.poll()
            if code is None:
                continue
            session = child.process.pid
            child.process = None
            if _session_alive(session):
                child.leftover_session = session
                child.leftovers_killed_at = now + self.stop_timeout
                _signal_group(session, signal.SIGTERM)
                log.warning("%s exited and left processes running: stopping them",
                            child.program.name)
            if not child.program.restart:
                child.done = True
                level = logging.INFO if code == 0 else logging.ERROR
                log.log(level, "%s finished with exit code %d", child.program.name, code)
                continue
            uptime = now - child.started_at
            child.backoff = (
                self.min_backoff
                if uptime >= self.stable_after or child.backoff == 0
                else min(child.backoff * 2, self.max_backoff)
            )
            child.restart_at = now + child.backoff
            log.warning("%s exited with code %d after %.0fs; restarting in %.0fs",
                        child.program.name, code, uptime, child.backoff)

    def _start(self, child: _Child) -> None:
        program = child.program
        env = dict(os.environ if program.env is None else program.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            if program.log_file is None:
                output: int | TextIO = subprocess.PIPE
            else:
                _keep_one_previous(program.log_file, self.log_file_limit)
                output = open(program.log_file, "ab")  # noqa: SIM115 - the child holds it
                self._say(program.name, f"output in {program.log_file}")
            try:
                child.process = subprocess.Popen(
                    list(program.argv), env=env, stdout=output, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            finally:
                if program.log_file is not None:
                    output.close()
        except OSError as exc:
            log.error("cannot start %s: %s", program.name, exc)
            child.process = None
            child.backoff = min(max(child.backoff * 2, self.min_backoff), self.max_backoff)
            child.restart_at = time.monotonic() + child.backoff
            return
        child.started_at = time.monotonic()
        child.restart_at = None
        if program.log_file is not None:
            return
        reader = threading.Thread(target=self._relay, args=(program.name, child.process),
                                  daemon=True)
        reader.start()
        child.readers.append(reader)

    def _relay(self, name: str, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            self._say(name, raw.decode("utf-8", "replace").rstrip())

    def _say(self, name: str, line: str) -> None:
        with self._write_lock:
            self.output.write(f"{name:<10} | {line}\n")
            self.output.flush()

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.process and c.process.poll() is None]
        for child in running:
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in running:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # The leaders have exited (or the time is up); what they started may still be
        # shutting down. Wait for it within the same timeout, then end it.
        sessions = {c.program.name: c.process.pid for c in running}
        sessions.update({c.program.name + " (an earlier run)": c.leftover_session
                         for c in self.children if c.leftover_session is not None})
        while (time.monotonic() < deadline
               and any(_session_alive(session) for session in sessions.values())):
            time.sleep(0.1)
        for name, session in sessions.items():
            killed = _kill_session(session)
            if killed:
                log.warning("%s: %d of its processes still ran %.0fs after SIGTERM; killed",
                            name, killed, self.stop_timeout)
        for child in running:
            child.process.wait()
        for child in self.children:
            for reader in child.readers:
                reader.join(timeout=2)
        log.info("all processes stopped")

    def _end_leftovers(self, child: _Child, now: float) -> bool:
        """Before a restart: has the previous run's session ended? Its leftovers have the
        stop timeout from the exit to end after SIGTERM; then they are killed."""
        if child.leftover_session is None:
            return True
        if now < child.leftovers_killed_at and _session_alive(child.leftover_session):
            return False
        killed = _kill_session(child.leftover_session)
        child.leftover_session = None
        if killed:
            log.warning("%s: killed %d processes of its previous run before restarting it",
                        child.program.name, killed)
        return True


def _keep_one_previous(log_file: Path, limit: int) -> None:
    """At a (re)start, a log file past ``limit`` bytes becomes ``<name>.1`` (replacing the
    one before): a stack left running for months does not fill the disk with Airflow's log."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        if log_file.stat().st_size > limit:
            os.replace(log_file, log_file.with_name(log_file.name + ".1"))
    except FileNotFoundError:
        pass


def _signal_group(process_group: int, signum: int) -> None:
    try:
        os.killpg(process_group, signum)
    except ProcessLookupError:
        pass


def _session_processes(session: int) -> list[int]:
    """The live processes of ``session`` (each child leads its own: the session id is its
    pid), read from /proc.

    The session, not the process group: Airflow puts each task process in a group of its
    own. Zombies are left out: they hold nothing, and an init that does not reap them (as
    in some containers) keeps them for ever."""
    members = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while we looked
            continue
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses
        state, _ppid, _pgrp, sid = stat.rsplit(")", 1)[1].split()[:4]
        if state != "Z" and int(sid) == session:
            members.append(int(entry.name))
    return members


def _session_alive(session: int) -> bool:
    if PROC.is_dir():
        return bool(_session_processes(session))
    try:  # not Linux: the child's process group stands in for its session
        os.killpg(session, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill_session(session: int) -> int:
    """SIGKILL what is left of ``session``; returns how many processes that was."""
    if not PROC.is_dir():
        alive = _session_alive(session)
        _signal_group(session, signal.SIGKILL)
        return int(alive)
    killed = 0
    for pid in _session_processes(session):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed += 1
    # SIGKILL is delivered when the kernel next runs them: on a loaded machine that can be
    # after we return, and "stopped" must mean gone (the DB closed, the port free).
    deadline = time.monotonic() + KILL_WAIT
    while killed and time.monotonic() < deadline and _session_processes(session):
        time.sleep(0.02)
    return killed
