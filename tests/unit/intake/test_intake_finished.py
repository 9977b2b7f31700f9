"""The one rule for "a folder is finished" (``intake.finished``): the sendit ``.tmp``
name rule and the quiet period, the same for the listener, the watcher and the queue."""

from __future__ import annotations

import os

import pytest
from dicom_ops.intake import datastore
from dicom_ops.intake.finished import (
    is_finished_folder,
    is_quiet,
    is_unfinished_name,
    newest_change,
)

QUIET = 30.0


@pytest.mark.parametrize(("seconds_since_change", "quiet"), [
    (0.0, False), (29.999, False), (30.0, True), (30.001, True), (3600.0, True),
])
def test_quiet_from_the_moment_the_quiet_period_has_passed(seconds_since_change, quiet):
    assert is_quiet(1000.0, 1000.0 + seconds_since_change, QUIET) is quiet


def test_a_change_in_the_future_is_not_quiet():
    # a clock that stepped back (or an mtime set ahead) must not finish a folder early
    assert is_quiet(1000.0, 990.0, QUIET) is False


def test_the_listeners_round_folders_are_unfinished_by_the_same_rule(tmp_path):
    round_folder = datastore.new_round_folder(tmp_path / "1.2.3")

    assert is_unfinished_name(round_folder.name)
    assert not is_unfinished_name("1.2.3")


def _drop(tmp_path, name: str, mtime: float):
    folder = tmp_path / name
    (folder / "sub").mkdir(parents=True)
    for path in (folder / "sub" / "a.dcm", folder / "b.dcm"):
        path.write_bytes(b"x")
        os.utime(path, (mtime, mtime))
    for path in (folder / "sub", folder):
        os.utime(path, (mtime, mtime))
    return folder


def test_newest_change_looks_at_everything_in_the_folder(tmp_path):
    folder = _drop(tmp_path, "scan", 1000.0)
    os.utime(folder / "sub" / "a.dcm", (2000.0, 2000.0))

    assert newest_change(folder) == 2000.0
    assert newest_change(tmp_path / "gone") == 0.0


def test_a_quiet_folder_with_a_finished_name_is_finished(tmp_path):
    folder = _drop(tmp_path, "scan_0001", 1000.0)

    assert is_finished_folder(folder, 1000.0 + QUIET, QUIET)
    assert not is_finished_folder(folder, 1000.0 + QUIET - 0.5, QUIET)


def test_a_tmp_name_is_unfinished_however_quiet(tmp_path):
    folder = _drop(tmp_path, "scan_0001.tmp", 1000.0)

    assert not is_finished_folder(folder, 1000.0 + 10 * QUIET, QUIET)
