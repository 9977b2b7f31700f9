"""Airflow overhead benchmark: what our operators cost before the domain work starts, and
how long Airflow takes to parse dags/.

Starts the embedded stack (`dicom-ops stack`), sends a few small synthetic CT series one
at a time with dcmtk's `storescu` (absolute path, checked by its banner), waits until
each RTSTRUCT is delivered, then reads the Airflow metadata DB (task instances) and the
app DB (audit events). Per operator it reports the median of

  overhead = (the domain function's first recorded step) - (task instance start)

where the first recorded step is the audit event the domain function writes first
(plan_jobs: a series claimed; claim_jobs: a job started; deidentify_and_pack: stage
"prepare"; upload_to_draw: stage "upload"; poll_draw: "server completed";
fetch_and_deliver: stage "fetch"), next to the task's whole duration and Airflow's own
queue-to-start latency, measured in the same run. Then it runs `airflow dags report`
on the stack's dags folder and prints each file's parse time and the total (goal < 1 s).

    .venv/bin/python bench/overhead.py [--series 4] [--slices 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dicom_ops.db.models import Event, JobSeries, Series, Transfer  # noqa: E402
from dicom_ops.db.session import session_scope  # noqa: E402
from dicom_ops.devtools.dcmtk import DcmtkMissing, require_dcmtk  # noqa: E402
from dicom_ops.devtools.synthetic import (  # noqa: E402
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    write_series,
)
from dicom_ops.draw.transfer_lifecycle import TransferStatus  # noqa: E402

from tests.support.stack import start_stack  # noqa: E402

PARSE_BUDGET = 1.0
# operator task id -> (event kind, event message or None): the domain's first record
FIRST_STEP = {
    "plan_jobs": ("claimed", None),
    "claim_jobs": ("started", None),
    "job.deidentify_and_pack": ("stage", "prepare"),
    "job.upload_to_draw": ("stage", "upload"),
    "poll_draw": ("server completed", None),
    "fetch_and_deliver": ("stage", "fetch"),
}


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _task_instances(airflow_db: Path) -> list[dict]:
    with sqlite3.connect(airflow_db) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            "SELECT dag_id, task_id, rendered_map_index, queued_dttm, start_date, end_date "
            "FROM task_instance WHERE state = 'success' AND dag_id IN "
            "('draw_export', 'draw_import')").fetchall()
    return [dict(row) for row in rows]


def _first_step(events: list[Event], task: dict) -> datetime | None:
    kind, message = FIRST_STEP[task["task_id"]]
    start, end = _utc(task["start_date"]), _utc(task["end_date"])
    label = task["rendered_map_index"] or ""
    job_id = int(label.split()[-1]) if label.startswith("job ") else None
    moments = [e.at for e in events
               if e.kind == kind and (message is None or e.message == message)
               and (job_id is None or e.job_id == job_id) and start <= e.at <= end]
    return min(moments) if moments else None


def _delivered(db_url: str, series_uid: str) -> bool:
    with session_scope(db_url) as session:
        status = session.scalar(
            select(Transfer.status).join(JobSeries, JobSeries.job_id == Transfer.job_id)
            .join(Series, Series.id == JobSeries.series_id)
            .where(Series.series_uid == series_uid))
    return status == TransferStatus.CONFIRMED


def _dags_report(stack) -> list[dict]:
    """`airflow dags report` in the stack's own environment (var/env.sh, as users run it)."""
    env_sh = stack.data_root / "env.sh"
    result = subprocess.run(["bash", "-c", f". {shlex.quote(str(env_sh))} && "
                             "airflow dags report -o json"],
                            capture_output=True, text=True, check=True)
    # the JSON is one line among Airflow's log lines (which also start with "[" or a date)
    line = next(line for line in result.stdout.splitlines() if line.startswith(("[{", "[]")))
    return json.loads(line)


def _seconds(text: str) -> float:
    """'0:00:00.123456' (a timedelta as Airflow prints it) in seconds."""
    hours, minutes, seconds = text.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds)
                     ).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=4)
    parser.add_argument("--slices", type=int, default=20)
    args = parser.parse_args()
    try:
        storescu = require_dcmtk("storescu")
    except DcmtkMissing as missing:
        sys.exit(str(missing))
    workdir = Path(tempfile.mkdtemp(prefix="dicom-ops-bench-overhead-"))
    stack = start_stack(workdir / "var", {"DICOM_OPS_QUIET_SECONDS": "5",
                                         "DICOM_OPS_EMULATOR_DELAY_SECONDS": "0"})
    try:
        stack.wait_healthy(timeout=300)
        db_url = f"sqlite:///{stack.data_root / 'dicom_ops.sqlite'}"
        time.sleep(10)  # let the first-start demo series go by
        for index in range(args.series):
            datasets = make_ct_series(synthetic_patient(300 + index),
                                      SeriesGeometry(slices=args.slices, rows=128, columns=128,
                                                     pixel_spacing=480 / 128))
            files = write_series(datasets, workdir / f"series{index}")
            subprocess.run([storescu, "-aec", "DRAWCLIENT", "127.0.0.1",
                            str(stack.listener_port), *map(str, files)], check=True,
                           capture_output=True, env={**os.environ, "TCP_NODELAY": "1"})
            deadline = time.monotonic() + 600
            while not _delivered(db_url, datasets[0].SeriesInstanceUID):
                if time.monotonic() > deadline:
                    sys.exit(f"series {index} not delivered\n{stack.log()[-4000:]}")
                time.sleep(0.5)
        report = _dags_report(stack)
        tasks = _task_instances(stack.data_root / "airflow" / "airflow.db")
        with session_scope(db_url) as session:
            events = list(session.scalars(select(Event)))
            session.expunge_all()
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    overhead, duration, queued = defaultdict(list), defaultdict(list), defaultdict(list)
    for task in tasks:
        if task["task_id"] not in FIRST_STEP:
            continue
        first = _first_step(events, task)
        start, end = _utc(task["start_date"]), _utc(task["end_date"])
        if first is None:
            continue  # a run with nothing to do for this step (no series, no result)
        overhead[task["task_id"]].append((first - start).total_seconds())
        duration[task["task_id"]].append((end - start).total_seconds())
        if task["queued_dttm"]:
            queued[task["task_id"]].append((start - _utc(task["queued_dttm"])).total_seconds())
    print(f"\nper-task overhead, task start -> domain's first recorded step "
          f"({args.series} series, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"  {'operator':<26} {'n':>3} {'overhead s':>11} {'task s':>8} {'share':>6} "
          f"{'queued->start s':>16}")
    for task_id in FIRST_STEP:
        if not overhead[task_id]:
            print(f"  {task_id:<26}   0  (no run of it did domain work)")
            continue
        o, d = statistics.median(overhead[task_id]), statistics.median(duration[task_id])
        q = statistics.median(queued[task_id]) if queued[task_id] else float("nan")
        print(f"  {task_id:<26} {len(overhead[task_id]):>3} {o:>11.3f} {d:>8.2f} "
              f"{o / d if d else 0:>6.0%} {q:>16.2f}")
    total = sum(_seconds(entry["duration"]) for entry in report)
    print(f"\nDAG parse time, `airflow dags report` (budget {PARSE_BUDGET:.0f} s):")
    for entry in sorted(report, key=lambda e: e["file"]):
        print(f"  {Path(entry['file']).name:<20} {_seconds(entry['duration']):6.3f} s  "
              f"{entry['dag_num']} DAG(s), {entry['task_num']} task(s)")
    print(f"  total {total:.3f} s = {total / PARSE_BUDGET:.2f} of the budget")


if __name__ == "__main__":
    main()
