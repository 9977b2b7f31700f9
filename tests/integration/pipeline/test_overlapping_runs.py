"""Export and import runs overlap (a burst is not queued behind one run): two runs working
at the same moment never take the same job, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from dicom_ops.config import REPO_ROOT, load_settings
from dicom_ops.db.models import Event, Job, Transfer
from dicom_ops.db.session import session_scope
from dicom_ops.draw import transfer_lifecycle
from dicom_ops.draw.transfer_lifecycle import TransferStatus
from dicom_ops.pipeline.import_results import poll_transfers
from dicom_ops.pipeline.plan import claim_jobs
from sqlalchemy import select

from tests.conftest import TEST_SECRET
from tests.support.emulator import make_upload
from tests.support.jobs import job_in_status

INTERVAL = timedelta(minutes=10)


def _at_once(*runs: Callable[[], list[int]]) -> list[list[int]]:
    """Start every run together (threads released by one barrier); what each returned."""
    barrier = threading.Barrier(len(runs))
    results: list[list[int] | BaseException] = [[] for _ in runs]

    def run(index: int) -> None:
        barrier.wait(30)
        try:
            results[index] = runs[index]()
        except BaseException as exc:  # surfaced below, in the test's thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


def _age(session, job_id: int, by: timedelta) -> None:
    """Move the job's last activity (row and events) ``by`` into the past: a lost run."""
    job = session.get(Job, job_id)
    job.updated_at = job.updated_at - by
    for event in session.scalars(select(Event).where(Event.job_id == job_id)):
        event.at = event.at - by


def test_two_overlapping_export_runs_never_claim_the_same_job(db_url):
    # given queued jobs and jobs a lost run left between its steps
    with session_scope(db_url) as session:
        queued = {job_in_status(session, "queued") for _ in range(24)}
        stranded = {job_in_status(session, "processing") for _ in range(6)}
        for job_id in stranded:
            _age(session, job_id, 2 * INTERVAL)
    # when two export runs claim at the same moment
    first, second = _at_once(
        *(lambda worker=worker: claim_jobs(db_url, worker, max_jobs=20, stranded_after=INTERVAL)
          for worker in ("run-a", "run-b")))
    # then every job was taken by exactly one run, and the DB names that run
    assert not set(first) & set(second)
    assert set(first) | set(second) == queued | stranded
    owners = {**{job_id: "run-a" for job_id in first}, **{job_id: "run-b" for job_id in second}}
    with session_scope(db_url) as session:
        rows = dict(session.execute(select(Job.id, Job.claimed_by)).all())
        resumed = Counter(session.scalars(select(Event.job_id).where(Event.kind == "resumed")))
    assert rows == owners
    assert resumed == Counter(stranded)  # each stranded job resumed once, by one run


def _jobs_waiting_at_the_server(settings, emulator, tmp_path, count: int) -> set[int]:
    """Jobs uploaded to the emulator (real HTTP) whose results are ready there."""
    zip_path, checksum, _ = make_upload(tmp_path)
    jobs = set()
    for _ in range(count):
        task_id = emulator.upload(zip_path, checksum).json()["task_id"]
        emulator.wait_for_status(task_id)
        with session_scope(settings.db_url) as session:
            job_id = job_in_status(session, "processing")
            transfer = Transfer(job_id=job_id)
            transfer_lifecycle.move(session, transfer, TransferStatus.PENDING)
            attempt = transfer_lifecycle.start_attempt(session, transfer).number
            transfer_lifecycle.record_answer(session, job_id, attempt, task_id,
                                             deadline=transfer.job.created_at + INTERVAL * 100)
        jobs.add(job_id)
    return jobs


def _settings(data_root, db_url):
    return load_settings({}, data_root=data_root, db_url=db_url, secret_key=TEST_SECRET,
                         templates_dir=REPO_ROOT / "include" / "templates", min_free_disk=0)


def test_two_overlapping_import_polls_hand_each_result_to_one_run(db_url, data_root,
                                                                   draw_emulator, tmp_path):
    # given results ready at the server for several jobs
    settings = _settings(data_root, db_url)
    jobs = _jobs_waiting_at_the_server(settings, draw_emulator, tmp_path, 8)
    client = draw_emulator.client()
    # when two import runs poll at the same moment
    first, second = _at_once(lambda: poll_transfers(settings, client).ready,
                             lambda: poll_transfers(settings, client).ready)
    # then each result goes to exactly one run's delivery, and is recorded completed once
    assert not set(first) & set(second)
    assert set(first) | set(second) == jobs
    with session_scope(db_url) as session:
        completed = Counter(session.scalars(
            select(Event.job_id).where(Event.kind == "server completed")))
        statuses = set(session.scalars(select(Transfer.status)))
    assert completed == Counter(jobs)
    assert statuses == {"completed"}


def test_a_delivery_in_progress_is_not_taken_over_but_one_left_by_a_lost_run_is(
        db_url, data_root, draw_emulator, tmp_path):
    # given two completed results: one a run is delivering now, one whose run was lost
    settings = _settings(data_root, db_url)
    busy, lost = sorted(_jobs_waiting_at_the_server(settings, draw_emulator, tmp_path, 2))
    client = draw_emulator.client()
    assert sorted(poll_transfers(settings, client).ready) == [busy, lost]
    with session_scope(db_url) as session:
        _age(session, lost, timedelta(minutes=settings.import_interval_minutes + 1))
    # when two later runs poll at the same moment
    first, second = _at_once(lambda: poll_transfers(settings, client).ready,
                             lambda: poll_transfers(settings, client).ready)
    # then only the lost run's result is taken over, by exactly one of them
    assert sorted(first + second) == [lost]
    with session_scope(db_url) as session:
        resumed = list(session.scalars(select(Event.job_id).where(Event.kind == "resumed")))
    assert resumed == [lost]
