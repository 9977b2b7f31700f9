"""A long history in the app DB, and the query plans of what runs against it.

``seed_history`` writes N finished series and jobs as production leaves them; the live
load is the same small set of work every time; ``full_scans`` says which history
tables a statement's plan reads in full. Used by bench/history.py (timings) and by
tests/unit/db/test_history_query_plans.py (plans: behaviour, not time).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from dicom_ops.cleanup.run import run_cleanup
from dicom_ops.db.models import Event, Job, JobSeries, Series, Transfer, UploadAttempt, utcnow
from dicom_ops.db.session import create_engine_for, session_scope
from dicom_ops.devtools.synthetic import (
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    write_series,
)
from dicom_ops.intake.readiness import ReadinessWatch
from dicom_ops.pipeline.import_results import poll_transfers
from dicom_ops.pipeline.plan import claim_jobs, plan_export
from sqlalchemy import delete, event, insert, select, text

HISTORY_TABLES = ("series", "job", "job_series", "transfer", "event", "upload_attempt")
LIVE = 3
JOB_EVENTS = ("created", "started", "stage", "stage", "stage", "stage", "packed",
              "uploaded", "stage", "server completed", "stage", "finished")
SERIES_EVENTS = ("received", "ready", "claimed", "planned")
UID = "1.2.826.0.1.3680043.8.498"


def seed_history(url: str, count: int, datastore: Path) -> None:
    """``count`` finished series, each with one finished job, as production leaves them."""
    engine = create_engine_for(url)
    long_ago = utcnow() - timedelta(days=400)
    with engine.begin() as connection:
        for start in range(0, count, 1000):
            numbers = range(start + 1, min(start + 1000, count) + 1)
            connection.execute(insert(Series), [{
                "id": n, "study_uid": f"{UID}.1.{n}", "series_uid": f"{UID}.2.{n}",
                "modality": "CT", "instance_count": 120, "source": "scp", "state": "done",
                "folder": str(datastore / f"{UID}.1.{n}" / f"{UID}.2.{n}"),
                "first_seen": long_ago, "last_seen": long_ago, "ready_at": long_ago,
            } for n in numbers])
            connection.execute(insert(Job), [{
                "id": n, "template": "Thorax OARs", "priority": 0, "status": "finished",
                "stage": "confirm", "forced": False, "claimed_by": "scheduled__old",
                "created_at": long_ago, "updated_at": long_ago, "started_at": long_ago,
                "finished_at": long_ago, "turnaround_seconds": 60.0} for n in numbers])
            connection.execute(insert(JobSeries), [
                {"job_id": n, "series_id": n, "position": 0} for n in numbers])
            connection.execute(insert(Transfer), [{
                "job_id": n, "server_task_id": f"{n:032x}", "status": "confirmed",
                "upload_attempts": 1, "poll_attempts": 3, "delivered_path": "/nonexistent",
            } for n in numbers])
            connection.execute(insert(UploadAttempt), [{
                "job_id": n, "number": 1, "started_at": long_ago, "ended_at": long_ago,
                "outcome": "accepted", "server_task_id": f"{n:032x}",
                "server_copy": "confirmed", "server_copy_at": long_ago} for n in numbers])
            connection.execute(insert(Event), [
                {"at": long_ago, "job_id": n, "series_id": None, "actor": "draw_export",
                 "kind": kind, "message": ""} for n in numbers for kind in JOB_EVENTS] + [
                {"at": long_ago, "job_id": None, "series_id": n, "actor": "listener",
                 "kind": kind, "message": ""} for n in numbers for kind in SERIES_EVENTS])
        if url.startswith("postgresql"):
            connection.execute(text("ANALYZE"))
            for table in ("series", "job", "transfer", "event", "job_series"):
                connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"))


def add_live_load(settings, round_number: int) -> list[int]:
    """Ready series with files, queued jobs, transfers waiting: the same every round."""
    live_series: list[int] = []
    now = utcnow()
    with session_scope(settings.db_url) as session:
        for n in range(LIVE):
            datasets = make_ct_series(synthetic_patient(round_number * 10 + n),
                                      SeriesGeometry(slices=3, rows=32, columns=32))
            folder = settings.datastore_dir / f"live-{round_number}-{n}"
            write_series(datasets, folder)
            series = Series(study_uid=datasets[0].StudyInstanceUID,
                            series_uid=datasets[0].SeriesInstanceUID, modality="CT",
                            folder=str(folder), source="scp", state="ready", ready_at=now,
                            instance_count=len(datasets))
            session.add(series)
            session.flush()
            live_series.append(series.id)
            for status in ("in_queue", "processing"):
                job = Job(template="Thorax OARs", status=status, created_at=now,
                          updated_at=now, started_at=now if status != "in_queue" else None)
                session.add(job)
                session.flush()
                session.add(JobSeries(job_id=job.id, series_id=series.id, position=0))
                if status == "processing":
                    session.add(Transfer(job_id=job.id, status="sent",
                                         server_task_id=f"live{round_number}{n}",
                                         deadline_at=now + timedelta(hours=24)))
    return live_series


def remove_live_load(settings, live_series: list[int]) -> None:
    """Take the round's live rows away again, so every round sees the same DB."""
    with session_scope(settings.db_url) as session:
        jobs = select(JobSeries.job_id).where(JobSeries.series_id.in_(live_series))
        job_ids = list(session.scalars(jobs))
        for model in (Event, JobSeries, Transfer, UploadAttempt):
            session.execute(delete(model).where(model.job_id.in_(job_ids)))
        session.execute(delete(Event).where(Event.series_id.in_(live_series)))
        session.execute(delete(Job).where(Job.id.in_(job_ids)))
        session.execute(delete(Series).where(Series.id.in_(live_series)))
    for folder in settings.datastore_dir.glob("live-*"):
        shutil.rmtree(folder)


def captured_selects(url: str, run: Callable[[], object]) -> list[tuple[str, object]]:
    """The SELECT statements (with their parameters) ``run`` sends to the DB."""
    engine = create_engine_for(url)
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen


def full_scans(url: str, statement: str, parameters) -> list[str]:
    """History tables the statement's plan reads in full, by name.

    SQLite: ``SCAN <table>`` in EXPLAIN QUERY PLAN. PostgreSQL, with sequential scans
    discouraged so that any usable index is taken: a ``Seq Scan`` of the table, or an
    index scan of it without an ``Index Cond`` (the whole index read, rows filtered).
    """
    engine = create_engine_for(url)
    sqlite = url.startswith("sqlite")
    # the row locks change nothing in the plan, and EXPLAIN refuses some forms of them
    query = re.sub(r"\s+FOR UPDATE[\s\S]*$", "", statement)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if not sqlite:
            cursor.execute("SET enable_seqscan = off")
        cursor.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + query, parameters)
        lines = [str(row[-1]) for row in cursor.fetchall()]
    finally:
        raw.rollback()
        raw.close()
    if sqlite:
        return [m.group(1) for line in lines
                if (m := re.match(r"\s*SCAN (\w+)", line)) and m.group(1) in HISTORY_TABLES]
    found = []
    for number, line in enumerate(lines):
        node = re.search(r"(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)"
                         r"(?: Backward)?(?: using \w+)? on (\w+)", line)
        if not node or node.group(2) not in HISTORY_TABLES:
            continue
        details = []
        for later in lines[number + 1:]:
            if "->" in later:
                break
            details.append(later)
        conditioned = any("Index Cond" in d or "Recheck Cond" in d for d in details)
        if node.group(1) == "Seq Scan" or not conditioned:
            found.append(node.group(2))
    return found


def operations(settings, client) -> dict[str, Callable[[], object]]:
    """The recurring work whose cost must not grow with history, by name."""
    def readiness() -> list[int]:
        with session_scope(settings.db_url) as session:
            return ReadinessWatch().poll(session)

    return {
        "readiness poll": readiness,
        "plan_jobs": lambda: plan_export(settings, actor="bench"),
        "claim_jobs": lambda: claim_jobs(settings.db_url, "bench", 20,
                                         stranded_after=timedelta(minutes=10)),
        "import poll": lambda: poll_transfers(settings, client),
        "cleanup survey": lambda: run_cleanup(settings, dry_run=True),
    }
