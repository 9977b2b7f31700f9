"""The cached queue: a backlog of finished folders registered N at a time, each once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from dicom_ops.db.models import IntakeFolder, Series
from dicom_ops.db.session import session_scope
from dicom_ops.intake.cached_queue import QueueError, register_backlog
from sqlalchemy import select

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series


def write_backlog(queue_folder: Path, count: int, *, first_patient: int = 0) -> list[Path]:
    """``count`` finished folders of one series each, oldest first (mtimes in the past)."""
    folders = []
    for number in range(count):
        folder = queue_folder / f"export_{first_patient + number:03d}"
        write_series(make_ct_series(synthetic_patient(first_patient + number),
                                    SeriesGeometry(slices=2)), folder)
        age = time.time() - 3600 + number * 60
        for path in [*folder.rglob("*"), folder]:
            os.utime(path, (age, age))
        folders.append(folder)
    return folders


def registered(db_url: str) -> list[str]:
    with session_scope(db_url) as session:
        return list(session.scalars(select(IntakeFolder.path).order_by(IntakeFolder.id)))


def series_states(db_url: str) -> dict[str, str]:
    with session_scope(db_url) as session:
        return {s.origin_folder: s.state for s in session.scalars(select(Series))}


@pytest.fixture
def queue_settings(settings, tmp_path):
    first, second = tmp_path / "queue" / "in1", tmp_path / "queue" / "in2"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    return replace(settings, queue_folders=(first, second), quiet_seconds=1)


def test_each_run_registers_at_most_number_folders_oldest_first(queue_settings):
    backlog = write_backlog(queue_settings.queue_folders[0], 5)

    runs = [register_backlog(queue_settings, number=2) for _ in range(4)]

    assert [len(r.registered) for r in runs] == [2, 2, 1, 0]
    assert [r.remaining for r in runs] == [3, 1, 0, 0]
    assert registered(queue_settings.db_url) == [str(f) for f in backlog]
    assert set(series_states(queue_settings.db_url).values()) == {"ready"}
    assert runs[0].summary()["series_ids"] == [1, 2]


def test_running_the_queue_again_never_registers_a_folder_twice(queue_settings):
    [folder] = write_backlog(queue_settings.queue_folders[0], 1)
    register_backlog(queue_settings, number=10)
    with session_scope(queue_settings.db_url) as session:  # the export pipeline took it
        for series in session.scalars(select(Series)):
            series.state = "done"

    again = register_backlog(queue_settings, number=10)

    assert again.registered == []
    assert registered(queue_settings.db_url) == [str(folder)]
    assert series_states(queue_settings.db_url) == {str(folder): "done"}


def test_subfolder_limits_a_run_to_one_queue_folder(queue_settings):
    first_folder, second_folder = queue_settings.queue_folders
    write_backlog(first_folder, 2)
    [wanted] = write_backlog(second_folder, 1, first_patient=10)

    result = register_backlog(queue_settings, number=10, subfolder="in2")

    assert [r.folder_id for r in result.registered] == [1]
    assert registered(queue_settings.db_url) == [str(wanted)]
    with pytest.raises(QueueError, match=r"'elsewhere' is not one of the queue folders \(in1, in2\)"):
        register_backlog(queue_settings, number=1, subfolder="elsewhere")


def test_folders_still_being_written_are_left_for_a_later_run(queue_settings):
    queue_folder = queue_settings.queue_folders[0]
    write_backlog(queue_folder, 1)
    write_series(make_ct_series(synthetic_patient(20), SeriesGeometry(slices=1)),
                 queue_folder / "copying.tmp")
    write_series(make_ct_series(synthetic_patient(21), SeriesGeometry(slices=1)),
                 queue_folder / "just_written")

    result = register_backlog(queue_settings, number=10)

    assert (len(result.registered), result.unfinished) == (1, 2)


def test_no_queue_folders_is_a_clear_error(settings):
    with pytest.raises(QueueError, match="set DICOM_OPS_QUEUE_FOLDERS"):
        register_backlog(settings, number=1)


def _queue_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dicom_ops.cli", "queue", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_queue_command_registers_batches_and_two_at_once_never_share_a_folder(
        queue_settings, cli_env):
    backlog = write_backlog(queue_settings.queue_folders[0], 6)
    env = dict(cli_env, DICOM_OPS_QUEUE_FOLDERS=",".join(map(str, queue_settings.queue_folders)),
               DICOM_OPS_QUIET_SECONDS="1")

    first = _queue_cli(env, "--number", "1", "--json")
    together = [subprocess.Popen([sys.executable, "-m", "dicom_ops.cli", "queue", "--number",
                                  "5", "--json"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in together]

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["folders"] == 1
    assert all(p.returncode == 0 for p in together), outputs
    assert sum(json.loads(out)["folders"] for out, _ in outputs) == 5
    assert sorted(registered(queue_settings.db_url)) == sorted(str(f) for f in backlog)
    with session_scope(queue_settings.db_url) as session:
        assert len(session.scalars(select(Series)).all()) == 6


def test_the_queue_command_without_queue_folders_fails_with_one_line(cli_env):
    result = _queue_cli(cli_env, "--number", "1")

    assert result.returncode == 1
    assert result.stderr.strip() == \
        "dicom-ops queue: no queue folders configured: set DICOM_OPS_QUEUE_FOLDERS"
