"""Cleanup: retention per area, dry run, never work in flight, the claims, the watermark.

Ages come from an injected ``now`` and explicit timestamps (DB rows, file mtimes); free
space comes from a fake disk whose free bytes grow as files are removed.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from dicom_ops.cleanup import disk
from dicom_ops.cleanup import remove as cleanup_remove
from dicom_ops.cleanup.remove import remove_item
from dicom_ops.cleanup.rules import Context, retention_for
from dicom_ops.cleanup.run import run_cleanup
from dicom_ops.cleanup.survey import survey_receiving
from dicom_ops.config import Settings
from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Event, Job, Series, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.intake import series_registry
from dicom_ops.intake.headers import InstanceHeader
from dicom_ops.intake.quarantine import quarantine
from dicom_ops.pipeline.workspace import job_work_dir
from sqlalchemy import func, select

from tests.support.jobs import add_series, job_in_status

STUDY = "1.2.826.0.1.3680043.8.498.77"
MiB = 1 << 20


def plenty(_path: Path) -> int:
    return 1 << 50


class FakeDisk:
    """A disk of ``capacity`` bytes holding exactly what is under the areas."""

    def __init__(self, settings: Settings, capacity: int) -> None:
        self.settings = settings
        self.capacity = capacity

    def __call__(self, _path: Path) -> int:
        s = self.settings
        used = sum(disk.tree_size(p) for p in (s.work_dir, s.quarantine_dir, s.datastore_dir))
        return self.capacity - used


@pytest.fixture
def now() -> datetime:
    return utcnow()


@pytest.fixture
def cfg(settings: Settings, db_url: str) -> Settings:
    """The documented default retentions, no watermark unless a test sets one; the app
    DB on SQLite and on PostgreSQL (the claims lock rows differently on each)."""
    return replace(settings, db_url=db_url, cleanup_watermark=0)


# --- building what a running installation leaves on disk ----------------------------------


def set_age(path: Path, moment: datetime) -> None:
    """mtime of ``path`` and everything under it."""
    stamp = moment.timestamp()
    for root, dirs, names in os.walk(path) if path.is_dir() else [(path.parent, [], [path.name])]:
        for name in (*dirs, *names):
            os.utime(Path(root) / name, (stamp, stamp))
    os.utime(path, (stamp, stamp))


def write_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    return path


def job_with_work_folder(settings: Settings, status: str, *, ended: datetime | None = None,
                         transfer: str | None = None, zip_size: int = 4096,
                         other_size: int = 0) -> tuple[int, Path]:
    with session_scope(settings.db_url) as session:
        job_id = job_in_status(session, status)
        job = session.get(Job, job_id)
        if ended is not None and status not in ("in_queue", "processing"):
            job.finished_at = ended
            job.updated_at = ended
        if transfer:
            session.add(Transfer(job_id=job_id, status=transfer))
    folder = job_work_dir(settings, job_id)
    write_file(folder / "upload.zip", zip_size)
    if other_size:
        write_file(folder / "deid" / "00" / "leftover.dcm", other_size)
    set_age(folder, ended or utcnow())
    return job_id, folder


def receiving_series(settings: Settings, last_seen: datetime, *, number: int = 1
                     ) -> tuple[int, Path]:
    """A series left receiving (e.g. the listener stopped), its round folder on disk."""
    series_uid = f"1.2.826.0.1.3680043.8.498.77.{number}"
    folder = settings.datastore_dir / STUDY / f"{series_uid}.tmp-1"
    for index in range(3):
        write_file(folder / f"{series_uid}.{index}.dcm", 1000)
    set_age(folder, last_seen)
    with session_scope(settings.db_url) as session:
        series_id = add_series(session, study_uid=STUDY, series_uid=series_uid,
                               folder=str(folder), state="receiving")
        row = session.get(Series, series_id)
        row.origin_folder = str(folder.with_name(series_uid))
        row.last_seen = last_seen
    return series_id, folder


def settled_series(settings: Settings, last_seen: datetime, *, state: str = "done",
                   number: int = 50) -> tuple[int, Path]:
    series_uid = f"1.2.826.0.1.3680043.8.498.77.{number}"
    folder = settings.datastore_dir / STUDY / series_uid
    write_file(folder / "1.dcm", 2000)
    write_file(folder / "RS.1.dcm", 500)  # a delivered RTSTRUCT
    set_age(folder, last_seen)
    with session_scope(settings.db_url) as session:
        series_id = add_series(session, study_uid=STUDY, series_uid=series_uid,
                               folder=str(folder), state=state, ready_at=last_seen)
        row = session.get(Series, series_id)
        row.origin_folder, row.last_seen = str(folder), last_seen
    return series_id, folder


def quarantined(settings: Settings, written: datetime) -> list[Path]:
    data = quarantine(settings.quarantine_dir, [b"\0" * 3000], "no SOP Instance UID")
    paths = [data, data.with_name(data.name.replace(".dcm", ".reason.txt"))]
    for path in paths:
        set_age(path, written)
    return paths


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return disk.snapshot(root)


def series_row(settings: Settings, series_id: int) -> Series:
    with session_scope(settings.db_url) as session:
        return session.get(Series, series_id)


def events(settings: Settings, kind: str) -> list[Event]:
    with session_scope(settings.db_url) as session:
        return list(session.scalars(select(Event).where(Event.kind == kind)))


# --- retention per area -------------------------------------------------------------------


def test_a_work_folder_goes_seven_days_after_its_job_ended_and_not_before(cfg, now):
    old_job, old_folder = job_with_work_folder(cfg, "finished", ended=now - timedelta(days=8),
                                               transfer="confirmed")
    _, young_folder = job_with_work_folder(cfg, "failed", ended=now - timedelta(days=6))

    report = run_cleanup(cfg, now=now, free_space=plenty)

    assert not old_folder.exists()
    assert young_folder.exists() and not (young_folder / "upload.zip").exists()
    work = report.areas["work"]
    assert (work.removed, work.kept, work.labels) == (1, 1, [f"job {old_job}"])
    assert work.bytes_freed == 4096
    assert [e.job_id for e in events(cfg, "cleanup")
            if e.message.startswith("work folder removed")] == [old_job]


def test_an_upload_zip_goes_a_day_after_its_job_ended_ahead_of_its_work_folder(cfg, now):
    job_id, folder = job_with_work_folder(cfg, "finished", ended=now - timedelta(hours=30),
                                          transfer="confirmed", zip_size=5000, other_size=700)

    report = run_cleanup(cfg, now=now, free_space=plenty)

    assert not (folder / "upload.zip").exists()
    assert (folder / "deid" / "00" / "leftover.dcm").exists()
    assert (report.areas["uploads"].removed, report.areas["uploads"].bytes_freed) == (1, 5000)
    assert report.areas["work"].removed == 0


def test_quarantined_files_go_with_their_reason_file_after_thirty_days(cfg, now):
    old = quarantined(cfg, now - timedelta(days=31))
    young = quarantined(cfg, now - timedelta(days=29))

    report = run_cleanup(cfg, now=now, free_space=plenty)

    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in young)
    assert report.areas["quarantine"].removed == 1
    assert report.areas["quarantine"].bytes_freed == sum(disk.tree_size(p) for p in young)


def test_a_series_nobody_sent_to_for_three_days_is_abandoned_and_marked_error(cfg, now):
    series_id, folder = receiving_series(cfg, now - timedelta(hours=73))
    fresh_id, fresh_folder = receiving_series(cfg, now - timedelta(hours=71), number=2)

    report = run_cleanup(cfg, now=now, free_space=plenty)

    assert not folder.exists() and fresh_folder.exists()
    row = series_row(cfg, series_id)
    assert row.state == "error" and row.state_detail.startswith("abandoned: no instance for 73 h")
    assert row.folder == row.origin_folder
    assert series_row(cfg, fresh_id).state == "receiving"
    assert report.areas["receiving"].labels == [f"series #{series_id}"]
    assert [e.series_id for e in events(cfg, "abandoned")] == [series_id]


def test_an_unfinished_folder_no_series_receives_into_goes_once_old(cfg, now):
    orphan = cfg.datastore_dir / STUDY / "1.2.826.0.1.3680043.8.498.77.9.tmp-3"
    write_file(orphan / "a.dcm", 100)
    set_age(orphan, now - timedelta(days=4))

    report = run_cleanup(cfg, now=now, free_space=plenty)

    assert not orphan.exists()
    assert report.areas["receiving"].labels == ["folder"]


def test_datastore_folders_and_events_are_kept_forever_unless_a_retention_is_set(cfg, now):
    _, folder = settled_series(cfg, now - timedelta(days=400))
    with session_scope(cfg.db_url) as session:
        session.add(Event(at=now - timedelta(days=400), actor="test", kind="old", message=""))

    report = run_cleanup(replace(cfg, cleanup_watermark=1 << 40), now=now, older_than_hours=0,
                         free_space=lambda _: 0)

    assert folder.exists() and (folder / "RS.1.dcm").exists()
    assert len(events(cfg, "old")) == 1
    assert report.areas["datastore"].retention is None
    assert "datastore series folders: kept forever" in "\n".join(report.lines())


def test_with_a_datastore_retention_only_settled_series_without_running_jobs_go(cfg, now):
    cfg = replace(cfg, retention_datastore_days=90)
    long_ago = now - timedelta(days=100)
    done_id, done = settled_series(cfg, long_ago, number=51)
    _, waiting = settled_series(cfg, long_ago, state="ready", number=52)
    busy_id, busy = settled_series(cfg, long_ago, number=53)
    with session_scope(cfg.db_url) as session:
        job_in_status(session, "processing", series_id=busy_id)

    report = run_cleanup(cfg, now=now, free_space=plenty)

    assert not done.exists() and waiting.exists() and busy.exists()
    assert series_row(cfg, done_id).state_detail.startswith("files removed by cleanup")
    assert report.areas["datastore"].skipped == {"series waiting for export": 1,
                                                 "a job of the series is still running": 1}


def test_events_older_than_their_retention_go_except_those_of_running_jobs(cfg, now):
    cfg = replace(cfg, retention_events_days=365)
    with session_scope(cfg.db_url) as session:
        running = job_in_status(session, "processing")
        old = now - timedelta(days=400)
        for job_id in (None, running):
            record_event(session, "ancient", "x", job_id=job_id, actor="test").at = old
        record_event(session, "recent", "x", actor="test").at = now - timedelta(days=10)

    report = run_cleanup(cfg, now=now, free_space=plenty)

    assert [e.job_id for e in events(cfg, "ancient")] == [running]
    assert len(events(cfg, "recent")) == 1
    assert report.areas["events"].removed == 1
    assert report.areas["events"].skipped == {"of a job still running": 1}


def test_older_than_hours_overrides_every_retention_that_is_set_and_no_other(cfg):
    retention = retention_for(cfg, older_than_hours=2)

    assert {k: v for k, v in retention.items() if v is not None} == {
        area: timedelta(hours=2) for area in ("uploads", "work", "quarantine", "receiving")}
    assert retention["datastore"] is None and retention["events"] is None


# --- dry run ---------------------------------------------------------------------------------


def test_a_dry_run_lists_what_would_go_and_changes_nothing(cfg, now):
    cfg = replace(cfg, retention_events_days=1, retention_datastore_days=1)
    long_ago = now - timedelta(days=40)
    job_with_work_folder(cfg, "finished", ended=long_ago, transfer="confirmed")
    quarantined(cfg, long_ago)
    series_id, _ = receiving_series(cfg, long_ago)
    settled_series(cfg, long_ago)
    with session_scope(cfg.db_url) as session:
        record_event(session, "ancient", "x", actor="test").at = long_ago
    files_before = tree(cfg.data_root / "work"), tree(cfg.quarantine_dir), tree(cfg.datastore_dir)
    with session_scope(cfg.db_url) as session:
        event_count = session.scalar(select(func.count()).select_from(Event))

    report = run_cleanup(cfg, now=now, dry_run=True, free_space=FakeDisk(cfg, 1 << 40))

    assert (tree(cfg.data_root / "work"), tree(cfg.quarantine_dir),
            tree(cfg.datastore_dir)) == files_before
    with session_scope(cfg.db_url) as session:
        assert session.scalar(select(func.count()).select_from(Event)) == event_count
    assert series_row(cfg, series_id).state == "receiving"
    assert report.removed == 5  # work folder, quarantined file, round, series folder, event
    assert report.bytes_freed > 0
    assert report.lines()[0].startswith("cleanup (dry run: nothing deleted): would remove 5")


# --- never work in flight ----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "transfer", "reason"), [
    ("in_queue", None, "job in queue"),
    ("processing", "pending", "job processing"),
    ("processing", "sent", "job waiting for the DRAW server"),
    ("processing", "completed", "job processing"),
    ("failed", "sent", "job ended with its transfer still 'sent'"),
])
def test_files_of_jobs_in_flight_stay_whatever_the_override_and_the_disk(cfg, now, status,
                                                                          transfer, reason):
    job_id, folder = job_with_work_folder(cfg, status, transfer=transfer,
                                          ended=now - timedelta(days=30))
    kept = cfg.quarantine_dir / f"job-{job_id}"
    write_file(kept / "rtstruct-1.dcm", 10)
    set_age(kept, now - timedelta(days=60))
    before = tree(folder)

    report = run_cleanup(replace(cfg, cleanup_watermark=1 << 40), now=now, older_than_hours=0,
                         free_space=lambda _: 0)

    assert tree(folder) == before and kept.exists()
    [(why, count)] = report.areas["work"].skipped.items()
    assert why.startswith(reason) and count == 1
    assert report.areas["quarantine"].skipped[why] == 1


def test_a_series_that_received_an_instance_within_the_hour_is_never_abandoned(cfg, now):
    series_id, folder = receiving_series(cfg, now - timedelta(minutes=20))

    report = run_cleanup(replace(cfg, cleanup_watermark=1 << 40), now=now, older_than_hours=0,
                         free_space=lambda _: 0)

    assert folder.exists() and series_row(cfg, series_id).state == "receiving"
    [(why, count)] = report.areas["receiving"].skipped.items()
    assert why.startswith("still receiving") and count == 1


def test_a_round_the_listener_restarted_after_the_survey_is_left_alone(cfg, now):
    series_id, folder = receiving_series(cfg, now - timedelta(days=5))
    ctx = Context(cfg, now)
    [item], _ = survey_receiving(ctx)
    with session_scope(cfg.db_url) as session:  # the listener: the series is sent again
        header = InstanceHeader(STUDY, series_row(cfg, series_id).series_uid, "1.2.3", "CT", None)
        new_round = series_registry.begin_round(session, header, datastore=cfg.datastore_dir,
                                                source="scp")

    outcome = remove_item(ctx, item, timedelta(hours=72), "retention 3 d")

    assert outcome.held == "series moved on meanwhile"
    assert folder.exists() and new_round.folder.exists()
    assert series_row(cfg, series_id).state == "receiving"


def test_a_claim_waits_for_the_listener_starting_a_round_and_then_leaves_it_alone(cfg, now):
    series_id, folder = receiving_series(cfg, now - timedelta(days=5))
    ctx = Context(cfg, now)
    [item], _ = survey_receiving(ctx)
    series_uid = series_row(cfg, series_id).series_uid
    locked, release = threading.Event(), threading.Event()

    def listener_begins_a_round() -> None:  # holds the row lock until released
        with session_scope(cfg.db_url) as session:
            header = InstanceHeader(STUDY, series_uid, "1.2.3", "CT", None)
            series_registry.begin_round(session, header, datastore=cfg.datastore_dir,
                                        source="scp")
            locked.set()
            release.wait(30)

    outcomes = []
    listener = threading.Thread(target=listener_begins_a_round)
    listener.start()
    assert locked.wait(30)
    claim = threading.Thread(target=lambda: outcomes.append(
        remove_item(ctx, item, timedelta(hours=72), "retention 3 d")))
    claim.start()
    claim.join(0.5)
    still_waiting = claim.is_alive()
    release.set()
    listener.join(30)
    claim.join(30)

    assert still_waiting, "the claim did not wait for the series row lock"
    assert outcomes[0].held == "series moved on meanwhile"
    assert folder.exists() and series_row(cfg, series_id).state == "receiving"


def test_a_write_that_lands_while_a_round_is_moved_aside_puts_it_back(cfg, now, monkeypatch):
    series_id, folder = receiving_series(cfg, now - timedelta(days=5))
    real_move = disk.move_aside

    def write_then_move(path, root, tag):  # a late instance arrives in the last instant
        write_file(path / "late.dcm", 10)
        return real_move(path, root, tag)

    monkeypatch.setattr(cleanup_remove.disk, "move_aside", write_then_move)

    report = run_cleanup(cfg, now=now, free_space=plenty)

    assert (folder / "late.dcm").exists()
    assert series_row(cfg, series_id).state == "receiving"
    assert report.areas["receiving"].skipped == {
        "written to while being removed (left in place)": 1}


def test_what_an_interrupted_run_moved_aside_is_finished_by_the_next(cfg, now):
    left = disk.trash_dir(cfg.work_dir) / "work-0a1b2c"
    write_file(left / "upload.zip", 123)

    report = run_cleanup(cfg, now=now, free_space=plenty)

    assert not left.exists()
    assert (report.areas["work"].removed, report.areas["work"].bytes_freed) == (1, 123)


def test_a_removal_that_fails_is_reported_as_an_error_and_finished_next_time(cfg, now,
                                                                             monkeypatch):
    _, folder = job_with_work_folder(cfg, "finished", ended=now - timedelta(days=8),
                                     transfer="confirmed")

    def refuse(_path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cleanup_remove.disk, "delete", refuse)
    failed = run_cleanup(cfg, now=now, free_space=plenty)
    monkeypatch.undo()
    finished = run_cleanup(cfg, now=now, free_space=plenty)

    assert failed.errors == 1 and failed.summary()["errors"] == 1
    assert failed.areas["work"].skipped == {
        "could not be removed (PermissionError: Permission denied)": 1}
    assert not folder.exists() and not any(disk.trash_dir(cfg.work_dir).iterdir())
    assert (finished.errors, finished.areas["work"].labels) == (0, ["left by an interrupted run"])


def test_things_in_work_that_belong_to_no_job_are_left_for_a_person(cfg, now):
    stray = write_file(cfg.work_dir / "notes.txt", 10)
    orphan = write_file(cfg.work_dir / "job-999" / "upload.zip", 10)
    set_age(orphan.parent, now - timedelta(days=90))

    report = run_cleanup(cfg, now=now, older_than_hours=0, free_space=plenty)

    assert stray.exists() and orphan.exists()
    assert sum(report.areas["work"].skipped.values()) == 2


# --- the disk watermark ---------------------------------------------------------------------


def test_below_the_watermark_the_oldest_allowed_items_go_first_until_above(cfg, now, caplog):
    cfg = replace(cfg, retention_uploads_hours=None, cleanup_watermark=100 * MiB)
    q = quarantined(cfg, now - timedelta(days=10))  # oldest, 3000 bytes + reason
    jobs = {age: job_with_work_folder(cfg, "finished", ended=now - timedelta(days=age),
                                      transfer="confirmed", zip_size=MiB)
            for age in (3, 2, 1)}
    _, busy = job_with_work_folder(cfg, "processing", zip_size=4 * MiB,
                                   ended=now - timedelta(days=20))
    fake = FakeDisk(cfg, cfg.cleanup_watermark - 2 * MiB + _used(cfg))  # 2 MiB short of it

    with caplog.at_level(logging.INFO, logger="dicom_ops.cleanup"):
        report = run_cleanup(cfg, now=now, free_space=fake)

    assert not any(p.exists() for p in q)
    assert not jobs[3][1].exists() and not jobs[2][1].exists()
    assert jobs[1][1].exists() and busy.exists()
    assert report.watermark_triggered and report.watermark_reached
    assert (report.areas["work"].early, report.areas["quarantine"].early) == (2, 1)
    assert report.areas["work"].labels == [f"job {jobs[3][0]}", f"job {jobs[2][0]}"]
    assert report.areas["work"].skipped == {"job processing": 1}
    assert "below the cleanup watermark" in caplog.text
    assert "back to" in caplog.text


def test_the_watermark_never_takes_datastore_folders_and_says_when_it_cannot_help(cfg, now,
                                                                                 caplog):
    cfg = replace(cfg, retention_datastore_days=3650, cleanup_watermark=1 << 40)
    _, folder = settled_series(cfg, now - timedelta(days=300))
    _, work = job_with_work_folder(cfg, "finished", ended=now - timedelta(hours=1),
                                   transfer="confirmed")

    with caplog.at_level(logging.INFO, logger="dicom_ops.cleanup"):
        report = run_cleanup(cfg, now=now, free_space=lambda _: 0)

    assert folder.exists() and not work.exists()
    assert report.watermark_triggered and not report.watermark_reached
    assert "still" in caplog.text and "STILL BELOW" in "\n".join(report.lines())


def test_a_dry_run_below_the_watermark_estimates_and_deletes_nothing(cfg, now):
    cfg = replace(cfg, retention_uploads_hours=None, cleanup_watermark=100 * MiB)
    folders = [job_with_work_folder(cfg, "finished", ended=now - timedelta(days=age),
                                    transfer="confirmed", zip_size=MiB)[1] for age in (3, 2, 1)]
    fake = FakeDisk(cfg, cfg.cleanup_watermark - MiB // 2 + _used(cfg))

    report = run_cleanup(cfg, now=now, dry_run=True, free_space=fake)

    assert all(f.exists() for f in folders)
    assert report.areas["work"].early == 1 and report.watermark_reached


# --- what reaches logs and XCom -------------------------------------------------------------


def test_report_and_summary_name_no_uid_or_path(cfg, now, caplog):
    receiving_series(cfg, now - timedelta(days=5))
    settled_series(cfg, now - timedelta(days=500))
    job_with_work_folder(cfg, "finished", ended=now - timedelta(days=9), transfer="confirmed")
    cfg = replace(cfg, retention_datastore_days=1, cleanup_watermark=1 << 40)

    with caplog.at_level(logging.INFO):
        report = run_cleanup(cfg, now=now, free_space=lambda _: 0)

    text = "\n".join(report.lines()) + caplog.text + repr(report.summary())
    assert report.removed == 3
    assert STUDY not in text and str(cfg.data_root) not in text
    assert _numbers_only(report.summary())


def _numbers_only(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _numbers_only(v) for k, v in value.items())
    return value is None or isinstance(value, (int, float, bool))


def _used(settings: Settings) -> int:
    return sum(disk.tree_size(p)
               for p in (settings.work_dir, settings.quarantine_dir, settings.datastore_dir))
