"""The jobs page's rows and plots from the app DB: paging newest first, filters, the
numbers behind the plots, and the query plans that keep 100,000 jobs fast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dicom_ops.db.models import Job, Transfer, utcnow
from dicom_ops.db.session import create_engine_for, session_scope
from dicom_ops.jobs import SeriesChoice, create_job, fail_job, finish_job, start_job
from dicom_ops.jobs.board import JobFilter, page_of_jobs, unsent_series
from dicom_ops.jobs.stats import failures_by_stage, jobs_per_day, percentile, turnaround
from sqlalchemy import insert, text

from tests.support.jobs import add_series, job_in_status


def test_pages_walk_every_job_once_newest_first_and_back(db_url):
    # given 23 jobs
    with session_scope(db_url) as session:
        ids = [job_in_status(session, "in_queue") for _ in range(23)]
    # when the table is read 10 at a time, following "older" to the end
    seen, before = [], None
    with session_scope(db_url) as session:
        while True:
            page = page_of_jobs(session, before=before, limit=10)
            seen += [row["id"] for row in page.rows]
            assert page.total == 23
            if page.older_than is None:
                break
            before = page.older_than
        # then each job came once, newest first; the last page has 3 and a way back
        assert seen == sorted(ids, reverse=True)
        assert len(page.rows) == 3 and page.newer_than == page.rows[0]["id"]
        back = page_of_jobs(session, after=page.newer_than, limit=10)
        assert [row["id"] for row in back.rows] == sorted(ids, reverse=True)[10:20]
        first = page_of_jobs(session, limit=10)
        assert first.newer_than is None


def test_filters_narrow_by_status_template_and_day_and_rows_carry_the_series(db_url):
    with session_scope(db_url) as session:
        series_id = add_series(session)
        finished = job_in_status(session, "finished", template="Pelvis", series_id=series_id)
        failed = job_in_status(session, "failed", template="Thorax OARs")
        job_in_status(session, "in_queue", template="Pelvis")
        old = job_in_status(session, "in_queue", template="Pelvis")
        session.get(Job, old).created_at = utcnow() - timedelta(days=40)
        session.add(Transfer(job_id=finished, status="confirmed", uploaded_at=utcnow(),
                             delivered_at=utcnow(), delivered_path="/data/RS.1.dcm"))
    with session_scope(db_url) as session:
        by_status = page_of_jobs(session, JobFilter(status="failed"))
        by_template = page_of_jobs(session, JobFilter(template="Pelvis"))
        today = utcnow().date()
        recent = page_of_jobs(session, JobFilter(template="Pelvis", created_from=today - timedelta(days=1)))
        assert [r["id"] for r in by_status.rows] == [failed]
        assert by_status.rows[0]["stage"] == "upload" and by_status.rows[0]["error"]
        assert by_template.total == 3
        assert old not in [r["id"] for r in recent.rows] and recent.total == 2
        row = next(r for r in by_template.rows if r["id"] == finished)
        assert row["series_id"] == series_id and row["delivered_path"] == "/data/RS.1.dcm"
        assert row["exported_at"] is not None and row["received_at"] is not None
    with pytest.raises(ValueError, match="status 'done'"):
        JobFilter(status="done")


def test_plot_numbers_turnaround_percentiles_outcomes_per_day_and_failure_stages(db_url):
    with session_scope(db_url) as session:
        series_id = add_series(session)
        for minutes in (10, 20, 30, 40, 100):
            job = create_job(session, template="T", series=[SeriesChoice(series_id)], force=True)
            start_job(session, job.id, worker="w")
            finish_job(session, job.id, turnaround_seconds=minutes * 60.0)
        for stage in ("upload", "upload", "deidentify"):
            job = create_job(session, template="T", series=[SeriesChoice(series_id)], force=True)
            start_job(session, job.id, worker="w")
            fail_job(session, job.id, stage=stage, error="x")
        job_in_status(session, "in_queue")
    now = utcnow()
    with session_scope(db_url) as session:
        found = turnaround(session, now - timedelta(days=30))
        days = jobs_per_day(session, now - timedelta(days=30), now + timedelta(seconds=1))
        failures = failures_by_stage(session, now - timedelta(days=30))
    assert sorted(p.seconds / 60 for p in found.points) == [10, 20, 30, 40, 100]
    assert (found.p50, found.p95) == (30 * 60.0, 100 * 60.0)
    assert len(days) == 31 and days[-1][0] == now.date()
    assert days[-1][1] == {"delivered": 5, "failed": 3, "cancelled": 0, "invalidated": 0,
                           "in progress": 1}
    assert failures == [("upload", 2), ("deidentify", 1)]
    assert percentile([], 50) is None


def test_series_not_sent_lists_no_template_and_conflicts_only(db_url):
    with session_scope(db_url) as session:
        ignored = add_series(session, state="ignored")
        conflict = add_series(session, state="error")
        add_series(session, state="done")
    with session_scope(db_url) as session:
        assert [s.id for s in unsent_series(session)] == [conflict, ignored]


def test_a_page_of_100000_jobs_reads_only_the_page_by_index(sqlite_url):
    """Server-side paging on indexed columns: the plans use the id and filter indexes
    (never a scan and sort of the whole table), and deep pages are as right as the first."""
    # given 100,000 jobs over a year, bulk-inserted
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"template": ("Thorax OARs", "Pelvis", "Head and neck")[n % 3],
             "status": ("finished", "failed", "in_queue", "cancelled")[n % 4],
             "priority": 0, "forced": False,
             "created_at": start + timedelta(minutes=5 * n),
             "updated_at": start + timedelta(minutes=5 * n)} for n in range(100_000)]
    with session_scope(sqlite_url) as session:
        session.execute(insert(Job), rows)
    with session_scope(sqlite_url) as session:
        deep = page_of_jobs(session, JobFilter(status="failed"), before=50_000, limit=50)
        assert [r["id"] for r in deep.rows] == list(range(49_998, 49_998 - 200, -4))
        assert deep.total == 25_000
    # then the plan of each query the page runs uses an index
    engine = create_engine_for(sqlite_url)
    queries = {
        "newest": "SELECT id FROM job WHERE id < 50000 ORDER BY id DESC LIMIT 51",
        "status": "SELECT id FROM job WHERE status = 'failed' AND id < 50000 ORDER BY id DESC LIMIT 51",
        "template": "SELECT id FROM job WHERE template = 'Pelvis' ORDER BY id DESC LIMIT 51",
        "day": "SELECT id FROM job WHERE created_at >= '2026-06-01' AND created_at < '2026-06-02' "
               "ORDER BY id DESC LIMIT 51",
        "turnaround": "SELECT id FROM job WHERE finished_at >= '2026-11-01'",
    }
    with engine.connect() as connection:
        for name, sql in queries.items():
            plan = " | ".join(row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "USING" in plan and "SCAN job" not in plan.replace("USING", "|"), (name, plan)
            assert "TEMP B-TREE" not in plan or name == "day", (name, plan)
