"""The watcher: folders other programs write into a watch folder, seen through inotify."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from dicom_ops.db.models import IntakeFolder, Series
from dicom_ops.db.session import session_scope
from dicom_ops.intake.watcher import FolderWatcher
from sqlalchemy import select

from tests.factories import (
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    with_hostile_uids,
    write_non_dicom,
    write_series,
)
from tests.support.listener import wait_until


def write_drop(folder: Path, *, patient: int = 0, series_slices=(3,)) -> list[str]:
    """A folder as another program writes it: one or more series, returns their UIDs."""
    uids = []
    study_uid = synthetic_patient(patient).study_uid
    for number, slices in enumerate(series_slices, start=1):
        datasets = make_ct_series(synthetic_patient(patient), SeriesGeometry(slices=slices),
                                  series_number=number, study_uid=study_uid)
        write_series(datasets, folder / f"series{number}")
        uids.append(str(datasets[0].SeriesInstanceUID))
    return uids


def publish(partial: Path) -> Path:
    """Rename ``<name>.tmp`` to ``<name>``, as a well-behaved writer finishes a folder."""
    final = partial.with_name(partial.name.removesuffix(".tmp"))
    partial.rename(final)
    return final


def ready_series(db_url: str) -> dict[str, Series]:
    with session_scope(db_url) as session:
        return {s.series_uid: s for s in session.scalars(select(Series).where(Series.state == "ready"))}


def intake_folders(db_url: str) -> list[IntakeFolder]:
    with session_scope(db_url) as session:
        return list(session.scalars(select(IntakeFolder).order_by(IntakeFolder.id)))


@pytest.fixture
def watch_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    return folder


@pytest.fixture
def watcher_settings(settings, watch_folder):
    return replace(settings, watch_folders=(watch_folder,), quiet_seconds=1)


@pytest.fixture
def running_watcher(watcher_settings):
    started = []

    def start() -> FolderWatcher:
        watcher = FolderWatcher(watcher_settings)
        watcher.start()
        stopping = threading.Event()
        thread = threading.Thread(target=watcher.run_until, args=(stopping,), daemon=True)
        thread.start()
        started.append((watcher, stopping, thread))
        return watcher

    yield start
    for watcher, stopping, thread in started:
        stopping.set()
        thread.join(timeout=10)
        watcher.stop()


def test_a_dropped_folder_with_two_series_becomes_two_ready_series(
        running_watcher, watcher_settings, watch_folder, caplog):
    caplog.set_level(logging.INFO, logger="dicom_ops")
    running_watcher()
    partial = watch_folder / "scan_0001.tmp"
    uids = write_drop(partial, series_slices=(3, 2))
    write_non_dicom(partial / "scanner.log")
    write_non_dicom(partial / "series1" / "README.txt")
    drop = publish(partial)
    before = sorted(p.relative_to(drop) for p in drop.rglob("*"))

    ready = wait_until(lambda: len(ready_series(watcher_settings.db_url)) == 2
                       and ready_series(watcher_settings.db_url))

    first, second = ready[uids[0]], ready[uids[1]]
    assert (first.instance_count, second.instance_count) == (3, 2)
    assert first.source == second.source == "watcher"
    assert first.origin_folder == second.origin_folder == str(drop)
    for series in (first, second):
        stored = list(Path(series.folder).iterdir())
        assert {pydicom.dcmread(p).SeriesInstanceUID for p in stored} == {series.series_uid}
        assert Path(series.folder).is_relative_to(watcher_settings.datastore_dir)
    assert sorted(p.relative_to(drop) for p in drop.rglob("*")) == before  # left as it was
    [folder] = intake_folders(watcher_settings.db_url)
    assert (folder.state, folder.series_count, folder.instance_count, folder.non_dicom_count) \
        == ("registered", 2, 5, 2)
    assert f"folder #{folder.id} (watcher): 5 instances" in caplog.text
    assert "2 non-DICOM files ignored" in caplog.text
    assert "scan_0001" not in caplog.text  # folder names may carry PHI: logged by id


def test_a_folder_named_tmp_waits_until_it_is_renamed(running_watcher, watcher_settings,
                                                     watch_folder):
    watcher = running_watcher()
    partial = watch_folder / "scan_0002.tmp"
    [uid] = write_drop(partial)

    time.sleep(2.5)  # more than twice the quiet period
    assert ready_series(watcher_settings.db_url) == {}

    partial.rename(watch_folder / "scan_0002")
    ready = wait_until(lambda: ready_series(watcher_settings.db_url))
    assert list(ready) == [uid]
    assert ready[uid].origin_folder == str(watch_folder / "scan_0002")
    assert watcher.pending() == []


def test_folders_written_while_the_watcher_was_stopped_are_registered_at_start(
        running_watcher, watcher_settings, watch_folder):
    [uid] = write_drop(watch_folder / "while_away", patient=1)
    old = time.time() - 60
    for path in [watch_folder / "while_away", *(watch_folder / "while_away").rglob("*")]:
        os.utime(path, (old, old))

    running_watcher()

    assert list(wait_until(lambda: ready_series(watcher_settings.db_url))) == [uid]


def test_unusable_dicom_is_quarantined_and_the_rest_of_the_folder_registered(
        running_watcher, watcher_settings, watch_folder):
    running_watcher()
    partial = watch_folder / "mixed.tmp"
    write_drop(partial, patient=2)
    hostile = make_ct_series(synthetic_patient(3), SeriesGeometry(slices=1))
    write_series([with_hostile_uids(d) for d in hostile], partial / "bad")
    drop = publish(partial)

    wait_until(lambda: ready_series(watcher_settings.db_url))

    [folder] = intake_folders(watcher_settings.db_url)
    assert (folder.instance_count, folder.unusable_count) == (3, 1)
    reasons = [p.read_text() for p in watcher_settings.quarantine_dir.glob("*.reason.txt")]
    assert len(reasons) == 1
    assert "reason: StudyInstanceUID is not a valid DICOM UID" in reasons[0]
    assert (drop / "bad").exists()  # the original stays where its writer put it
    assert not Path("/tmp/evil").exists()


def test_a_folder_without_dicom_is_recorded_once_and_never_rescanned(
        running_watcher, watcher_settings, watch_folder):
    watcher = running_watcher()
    partial = watch_folder / "notes.tmp"
    partial.mkdir()
    write_non_dicom(partial / "a.txt")
    publish(partial)

    wait_until(lambda: intake_folders(watcher_settings.db_url))
    [folder] = intake_folders(watcher_settings.db_url)
    assert (folder.state, folder.non_dicom_count) == ("empty", 1)
    assert watcher.pending() == []


def test_a_check_only_looks_at_folders_that_changed(watcher_settings, watch_folder):
    for number in range(20):
        write_drop(watch_folder / f"done_{number:02d}", patient=10 + number, series_slices=(1,))
    old = time.time() - 60
    for path in watch_folder.rglob("*"):
        os.utime(path, (old, old))
    first = FolderWatcher(watcher_settings)
    first.start()
    first.tick()
    first.stop()
    assert len(intake_folders(watcher_settings.db_url)) == 20

    watcher = FolderWatcher(watcher_settings)
    watcher.start()
    try:
        watcher.tick()
        assert (watcher.pending(), watcher.watched_drops()) == ([], [])  # nothing to look at
        write_drop(watch_folder / "new_one", patient=40, series_slices=(1,))
        wait_until(lambda: watcher.pending() == [watch_folder / "new_one"])
        watcher.tick()
        assert watcher.watched_drops() == [watch_folder / "new_one"]
    finally:
        watcher.stop()


def test_a_folder_is_registered_only_after_a_quiet_period_without_events_or_writes(
        watcher_settings, watch_folder):
    clock, wall_offset = [0.0], [0.0]
    watcher = FolderWatcher(watcher_settings, clock=lambda: clock[0],
                            wall_clock=lambda: time.time() + wall_offset[0])
    drop = watch_folder / "slow_writer"
    write_drop(drop, patient=5)

    watcher.changed(drop / "series1")
    clock[0] = 0.5
    assert watcher.tick() == []  # an event half a quiet period ago
    clock[0] = 1.5
    assert watcher.tick() == []  # no event for a while, but its files are brand new
    assert watcher.pending() == [drop]

    wall_offset[0] = 5.0  # time passes without a write
    clock[0] = 3.0
    [report] = watcher.tick()

    assert len(report.series_ids) == 1
    assert watcher.pending() == []


def test_the_watcher_command_registers_drops_and_stops_cleanly(cli_env, settings, watch_folder,
                                                               tmp_path):
    import signal
    import subprocess
    import sys

    env = dict(cli_env, DICOM_OPS_WATCH_FOLDERS=str(watch_folder), DICOM_OPS_QUIET_SECONDS="1")
    log_path = tmp_path / "watcher.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "dicom_ops.cli", "watcher"], env=env,
                                   stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "watching 1 folder(s)" in log_path.read_text())
            partial = watch_folder / "from_tps.tmp"
            [uid] = write_drop(partial, patient=7)
            publish(partial)
            wait_until(lambda: uid in ready_series(settings.db_url))
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)

    assert code == 0
    assert "watcher stopped" in log_path.read_text()


def test_the_watcher_command_without_watch_folders_fails_with_one_line(cli_env):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "dicom_ops.cli", "watcher"], env=cli_env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert result.stderr.strip() == \
        "dicom-ops watcher: no watch folders configured: set DICOM_OPS_WATCH_FOLDERS"
