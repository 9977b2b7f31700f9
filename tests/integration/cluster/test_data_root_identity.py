"""The listener and the workers refuse to start on a data root that is not the app DB's
(a share mounted in the wrong place, or not at all), naming both paths and both ids;
`dicom-ops db upgrade` stamps the data root and the app DB with one id."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from dicom_ops.data_root import (
    MARKER_NAME,
    DataRootMismatch,
    check,
    read_marker,
    recorded_identity,
    stamp,
)
from dicom_ops.db.session import upgrade


def _dicom_ops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dicom_ops.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_db_upgrade_writes_one_id_into_the_data_root_and_the_app_db(cli_env, tmp_path):
    # given a fresh app DB and an empty data root
    root = tmp_path / "shared"
    env = dict(cli_env, DICOM_OPS_DATA_ROOT=str(root),
               DICOM_OPS_DB_URL=f"sqlite:///{tmp_path / 'fresh.sqlite'}")

    # when it is upgraded, twice
    first = _dicom_ops(env, "db", "upgrade")
    second = _dicom_ops(env, "db", "upgrade")

    # then the marker and the DB hold the same id, and the second run changed nothing
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    marker_id = read_marker(root)
    assert marker_id and (root / MARKER_NAME).exists()
    assert recorded_identity(env["DICOM_OPS_DB_URL"]).marker_id == marker_id
    assert marker_id in first.stdout and marker_id in second.stdout


def test_listener_refuses_a_data_root_without_the_marker(cli_env, settings, tmp_path):
    # given the app DB of one data root, and a host that mounted nothing at another path
    empty_mount = tmp_path / "not-mounted"
    empty_mount.mkdir()
    env = dict(cli_env, DICOM_OPS_DATA_ROOT=str(empty_mount))

    # when the listener starts there
    result = _dicom_ops(env, "listener", "--port", "0")

    # then it refuses, naming both data roots and the app DB's id, and writes nothing
    assert result.returncode == 1
    assert str(empty_mount) in result.stderr
    assert str(settings.data_root) in result.stderr
    assert read_marker(settings.data_root) in result.stderr
    assert "mount the shared data root" in result.stderr
    assert list(empty_mount.iterdir()) == []


def test_worker_refuses_another_installations_data_root(cli_env, settings, tmp_path):
    # given a data root stamped by another installation's app DB
    other_root = tmp_path / "other"
    other_url = f"sqlite:///{tmp_path / 'other.sqlite'}"
    upgrade(other_url)
    other_id = stamp(dataclasses.replace(settings, data_root=other_root, db_url=other_url))
    env = dict(cli_env, DICOM_OPS_DATA_ROOT=str(other_root))

    # when a worker of our installation starts on it
    result = _dicom_ops(env, "worker", "--celery-hostname", "worker-9@%h")

    # then it refuses before Airflow starts, naming both ids
    assert result.returncode == 1
    assert other_id in result.stderr and read_marker(settings.data_root) in result.stderr
    assert "celery" not in result.stdout.lower()


def test_check_passes_on_the_stamped_data_root_and_upgrade_refuses_a_lost_marker(
        settings, tmp_path):
    # given a stamped installation
    assert check(settings) == read_marker(settings.data_root)

    # when the marker is lost (a restore without it) and db upgrade runs again
    (settings.data_root / MARKER_NAME).unlink()
    try:
        stamp(settings)
        refused = None
    except RuntimeError as exc:
        refused = str(exc)

    # then it refuses rather than stamp what may be an empty mount, unless told to adopt
    assert refused and "--adopt-data-root" in refused
    assert stamp(settings, adopt=True) == recorded_identity(settings.db_url).marker_id
    assert check(settings) == read_marker(Path(settings.data_root))


def test_on_either_backend_a_second_data_root_is_told_apart(db_url, settings, tmp_path):
    # given an installation stamped on this backend
    ours = dataclasses.replace(settings, db_url=db_url)
    marker_id = stamp(ours)

    # when a host sees a copy of another data root at that path
    copied = dataclasses.replace(ours, data_root=tmp_path / "copy")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / MARKER_NAME).write_text("0" * 32 + "\n")

    # then only the real one passes
    assert check(ours) == marker_id
    with pytest.raises(DataRootMismatch, match=f"is data root {'0' * 32}.*belongs to data "
                                               f"root {marker_id}"):
        check(copied)
