"""Cleanup against a real listener fed by dcmtk's storescu: a series still receiving is
never touched; a round abandoned while the listener was down goes and is not resumed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from dicom_ops.cleanup.run import run_cleanup
from dicom_ops.db.models import utcnow

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series
from tests.support.listener import files_under, series_rows, storescu, wait_ready, wait_until

pytestmark = pytest.mark.dcmtk


def write_ct(folder: Path, slices: int) -> tuple[list[Path], str, str]:
    datasets = make_ct_series(synthetic_patient(11), SeriesGeometry(slices=slices, rows=64,
                                                                    columns=64))
    return (write_series(datasets, folder), str(datasets[0].StudyInstanceUID),
            str(datasets[0].SeriesInstanceUID))


def receiving_row(db_url: str, series_uid: str, instances: int):
    def check():
        row = series_rows(db_url).get(series_uid)
        return row if row and row.state == "receiving" and row.instance_count == instances \
            else None

    return wait_until(check, 30, "the series is not receiving")


def test_cleanup_between_two_sends_leaves_the_series_to_complete_with_all_instances(
        start_listener, settings, tmp_path):
    files, study_uid, series_uid = write_ct(tmp_path / "ct", slices=20)
    listener = start_listener(quiet_seconds=8)
    storescu(listener.port, files[:10])
    receiving = receiving_row(settings.db_url, series_uid, 10)

    # The most eager run there is: every retention overridden to 0, the disk "full".
    report = run_cleanup(replace(settings, cleanup_watermark=1 << 40), older_than_hours=0,
                         free_space=lambda _: 0)

    during = series_rows(settings.db_url)[series_uid]
    assert (during.state, during.folder) == ("receiving", receiving.folder)
    assert len(files_under(Path(receiving.folder))) == 10
    [(why, count)] = report.areas["receiving"].skipped.items()
    assert why.startswith("still receiving") and count == 1

    storescu(listener.port, files[10:])

    ready = wait_ready(settings.db_url, [series_uid], timeout=60)[series_uid]
    final = settings.datastore_dir / study_uid / series_uid
    assert ready.instance_count == 20 and ready.folder == str(final)
    assert len(files_under(final)) == 20


def test_a_round_abandoned_while_the_listener_was_down_goes_and_is_not_resumed(
        start_listener, settings, tmp_path):
    files, study_uid, series_uid = write_ct(tmp_path / "ct", slices=12)
    listener = start_listener(quiet_seconds=4)
    storescu(listener.port, files[:5])
    round_folder = Path(receiving_row(settings.db_url, series_uid, 5).folder)
    listener.kill()  # a crash mid-series; nobody sends the rest

    report = run_cleanup(replace(settings, cleanup_watermark=0),
                         now=utcnow() + timedelta(days=4), free_space=lambda _: 1 << 50)

    assert not round_folder.exists()
    row = series_rows(settings.db_url)[series_uid]
    assert row.state == "error" and row.state_detail.startswith("abandoned")
    assert report.areas["receiving"].labels == [f"series #{row.id}"]

    listener.start()
    storescu(listener.port, files)  # the scanner sends the whole series again

    ready = wait_ready(settings.db_url, [series_uid], timeout=60)[series_uid]
    assert ready.instance_count == 12
    assert len(files_under(settings.datastore_dir / study_uid / series_uid)) == 12
    assert "resuming a round" not in listener.log()
