"""Claims on SQLite and a real PostgreSQL server: order, and exactly-once under contention
from separate OS processes."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections import Counter
from datetime import timedelta

import pytest
from dicom_ops.db.models import Event, Job, Series, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.jobs import SeriesChoice, claim_next_job, claim_ready_series, create_job
from sqlalchemy import func, select

from tests.support.jobs import add_series, job_in_status

WORKERS = 4
JOBS = 200
READY_SERIES = 60


def test_claims_take_the_highest_priority_first_then_the_oldest(db_url):
    # given jobs queued with mixed priorities, and one already cancelled
    with session_scope(db_url) as session:
        series_id = add_series(session)
        priorities = [0, 5, 0, 5, 1]
        ids = [create_job(session, template="T", series=[SeriesChoice(series_id)], priority=p,
                          force=True).id for p in priorities]
        job_in_status(session, "cancelled", priority=9)
    # when a worker claims until the queue is empty
    claimed = []
    while (job_id := claim_next_job(db_url, "worker-1")) is not None:
        claimed.append(job_id)
    # then priority 5 (oldest first), then 1, then 0 (oldest first); the cancelled one never
    assert claimed == [ids[1], ids[3], ids[4], ids[0], ids[2]]
    with session_scope(db_url) as session:
        job = session.get(Job, ids[1])
        assert (job.status, job.claimed_by) == ("processing", "worker-1")


def test_claiming_an_empty_queue_gives_none(db_url):
    assert claim_next_job(db_url, "worker-1") is None


def test_ready_series_are_claimed_oldest_ready_first_and_only_once(db_url):
    # given ready series of different ages, and series in other states
    now = utcnow()
    with session_scope(db_url) as session:
        newest = add_series(session, ready_at=now)
        oldest = add_series(session, ready_at=now - timedelta(minutes=10))
        middle = add_series(session, ready_at=now - timedelta(minutes=5))
        add_series(session, state="receiving")
        add_series(session, state="done")
    # when claimed two at a time
    first = claim_ready_series(db_url, 2)
    second = claim_ready_series(db_url, 2)
    # then oldest ready first, each once, and nothing else
    assert first == [oldest, middle]
    assert second == [newest]
    assert claim_ready_series(db_url, 2) == []
    with session_scope(db_url) as session:
        states = dict(session.execute(select(Series.id, Series.state)).all())
        assert [states[i] for i in (oldest, middle, newest)] == ["claimed"] * 3
        assert session.scalar(select(func.count()).select_from(Event)
                              .where(Event.kind == "claimed")) == 3


def _claim_until_empty(url: str, kind: str, worker: str, start, results) -> None:
    """One OS process: wait for the start signal, then claim until nothing is left."""
    start.wait(60)
    claimed: list[int] = []
    if kind == "jobs":
        while (job_id := claim_next_job(url, worker)) is not None:
            claimed.append(job_id)
    else:
        while batch := claim_ready_series(url, 3, actor=worker):
            claimed.extend(batch)
    results.put((worker, claimed))


def _run_claimers(url: str, kind: str) -> dict[str, list[int]]:
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=_claim_until_empty,
                                 args=(url, kind, f"worker-{n}", start, results))
                 for n in range(WORKERS)]
    for process in processes:
        process.start()
    start.set()
    claimed: dict[str, list[int]] = {}
    deadline = time.monotonic() + 240
    while len(claimed) < len(processes) and time.monotonic() < deadline:
        try:
            worker, ids = results.get(timeout=0.5)
            claimed[worker] = ids
        except queue.Empty:
            crashed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            assert not crashed, f"a claiming process crashed (exit codes {crashed})"
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return claimed


@pytest.mark.slow
def test_four_processes_claim_two_hundred_jobs_each_exactly_once(db_url):
    # given 200 queued jobs
    with session_scope(db_url) as session:
        series_id = add_series(session)
        for _ in range(JOBS):
            create_job(session, template="T", series=[SeriesChoice(series_id)], force=True)
    # when 4 separate processes claim as fast as they can
    claimed = _run_claimers(db_url, "jobs")
    # then every job was claimed exactly once, by the worker the DB names
    all_claims = [job_id for ids in claimed.values() for job_id in ids]
    assert len(all_claims) == JOBS
    assert len(set(all_claims)) == JOBS
    with session_scope(db_url) as session:
        rows = session.execute(select(Job.id, Job.status, Job.claimed_by)).all()
        assert {status for _, status, _ in rows} == {"processing"}
        owner = {job_id: worker for worker, ids in claimed.items() for job_id in ids}
        assert {job_id: worker for job_id, _, worker in rows} == owner
        started = Counter(session.scalars(select(Event.job_id).where(Event.kind == "started")))
        assert set(started.values()) == {1} and len(started) == JOBS


@pytest.mark.slow
def test_four_processes_claim_ready_series_each_exactly_once(db_url):
    with session_scope(db_url) as session:
        ids = {add_series(session) for _ in range(READY_SERIES)}
    claimed = _run_claimers(db_url, "series")
    all_claims = [series_id for batch in claimed.values() for series_id in batch]
    assert sorted(all_claims) == sorted(ids)
    with session_scope(db_url) as session:
        assert set(session.scalars(select(Series.state))) == {"claimed"}
