"""The listener with dcmtk's storescu/echoscu as the real sending client."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pydicom
import pynetdicom
import pytest
from dicom_ops.db.models import Event
from dicom_ops.db.session import session_scope
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
from sqlalchemy import select

from tests.factories import (
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    with_hostile_uids,
    write_series,
)
from tests.support.listener import (
    SCANNER_AET,
    echoscu,
    files_under,
    series_rows,
    storescu,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.dcmtk


def write_ct(folder: Path, *, slices: int = 50, patient: int = 0, series_number: int = 1,
             study_uid: str | None = None) -> tuple[list[Path], str, str]:
    datasets = make_ct_series(synthetic_patient(patient), SeriesGeometry(slices=slices),
                              series_number=series_number, study_uid=study_uid)
    files = write_series(datasets, folder)
    return files, str(datasets[0].StudyInstanceUID), str(datasets[0].SeriesInstanceUID)


def round_folders(settings) -> list[Path]:
    return [p for p in settings.datastore_dir.rglob("*.tmp-*")]


def test_a_50_slice_ct_arrives_complete_in_one_ready_folder(start_listener, settings, tmp_path):
    files, study_uid, series_uid = write_ct(tmp_path / "ct")
    listener = start_listener(quiet_seconds=1)

    storescu(listener.port, files)

    series = wait_ready(settings.db_url, [series_uid])[series_uid]
    folder = settings.datastore_dir / study_uid / series_uid
    assert series.folder == series.origin_folder == str(folder)
    assert (series.instance_count, series.source, series.calling_aet) == (50, "scp", SCANNER_AET)
    assert (series.modality, series.description) == ("CT", "Thorax 2.5mm")
    stored = files_under(folder)
    assert len(stored) == 50
    assert round_folders(settings) == []
    sent = {pydicom.dcmread(f).SOPInstanceUID: f for f in files}
    for path in stored[:3]:
        received = pydicom.dcmread(path)
        assert path.name == f"{received.SOPInstanceUID}.dcm"
        assert received.file_meta.SourceApplicationEntityTitle == SCANNER_AET
        original = pydicom.dcmread(sent[received.SOPInstanceUID])
        assert received.PixelData == original.PixelData
        assert received.PatientName == original.PatientName
    assert "series #1 ready: 50 instances" in listener.log()


def test_two_series_interleaved_in_one_association_come_out_as_two_series(
        start_listener, settings, tmp_path):
    first, study_uid, first_uid = write_ct(tmp_path / "a", slices=12, series_number=1)
    second, _, second_uid = write_ct(tmp_path / "b", slices=12, series_number=2,
                                     study_uid=study_uid)
    interleaved = [f for pair in zip(first, second, strict=True) for f in pair]
    listener = start_listener(quiet_seconds=1)

    storescu(listener.port, interleaved)

    rows = wait_ready(settings.db_url, [first_uid, second_uid])
    assert rows[first_uid].instance_count == rows[second_uid].instance_count == 12
    for uid in (first_uid, second_uid):
        folder = settings.datastore_dir / study_uid / uid
        assert {pydicom.dcmread(p).SeriesInstanceUID for p in files_under(folder)} == {uid}


def test_an_aborted_association_resumed_later_completes_its_series(
        start_listener, settings, tmp_path):
    files, study_uid, series_uid = write_ct(tmp_path / "ct", slices=30)
    listener = start_listener(quiet_seconds=1)

    storescu(listener.port, files[:12], extra=["--abort"])
    wait_until(lambda: "aborted: 12 stored" in listener.log(), message=listener.log())
    storescu(listener.port, files)  # the sender starts over: 12 duplicates, 18 new

    wait_until(lambda: series_rows(settings.db_url)[series_uid].instance_count == 30
               and series_rows(settings.db_url)[series_uid].state == "ready")
    assert len(files_under(settings.datastore_dir / study_uid / series_uid)) == 30
    assert round_folders(settings) == []


def test_an_unknown_calling_ae_is_rejected_and_nothing_is_stored(
        start_listener, settings, tmp_path):
    files, _, _ = write_ct(tmp_path / "ct", slices=3)
    listener = start_listener(allowed_aets=f"{SCANNER_AET},PACS")

    refused = storescu(listener.port, files, calling_aet="INTRUDER", check=False)
    echo_allowed = echoscu(listener.port)

    assert refused.returncode != 0
    assert "Association Rejected" in refused.stderr
    assert echo_allowed.returncode == 0, echo_allowed.stderr
    assert "association from INTRUDER (127.0.0.1) rejected: calling AE title not in" \
        in listener.log()
    assert series_rows(settings.db_url) == {}
    assert not any(settings.datastore_dir.rglob("*.dcm"))


def test_instances_without_study_or_series_uid_are_quarantined_with_a_reason(
        start_listener, settings, tmp_path):
    datasets = make_ct_series(synthetic_patient(3), SeriesGeometry(slices=2))
    del datasets[0].StudyInstanceUID
    del datasets[1].SeriesInstanceUID
    files = write_series(datasets, tmp_path / "bad")
    listener = start_listener()

    result = storescu(listener.port, files, check=False)

    assert result.stderr.count("Received Store Response (Error: CannotUnderstand)") == 2
    reasons = sorted(p.read_text() for p in settings.quarantine_dir.glob("*.reason.txt"))
    assert len(reasons) == 2
    assert "reason: StudyInstanceUID is missing" in reasons[1]
    assert "reason: SeriesInstanceUID is missing" in reasons[0]
    assert f"calling_aet: {SCANNER_AET}" in reasons[0]
    kept = sorted(settings.quarantine_dir.glob("*.dcm"))
    assert {pydicom.dcmread(p).SOPInstanceUID for p in kept} == \
        {d.SOPInstanceUID for d in datasets}
    assert series_rows(settings.db_url) == {}
    log = listener.log()
    assert "quarantined" in log and "StudyInstanceUID is missing" in log


def _send_raw(port: int, path: Path) -> int:
    """Send a file's dataset bytes as they are (pynetdicom reads them without decoding)."""
    ae = AE(ae_title=SCANNER_AET)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    association = ae.associate("127.0.0.1", port, ae_title="DRAWCLIENT")
    assert association.is_established
    try:
        status = association.send_c_store(path)
    finally:
        association.release()
    return status.Status


def _with_body(template: Path, target: Path, body: bytes) -> Path:
    """``template``'s preamble and file meta, followed by ``body``."""
    from pydicom.filereader import _read_file_meta_info

    with open(template, "rb") as handle:
        handle.seek(132)
        _read_file_meta_info(handle)
        meta_end = handle.tell()
    target.write_bytes(template.read_bytes()[:meta_end] + body)
    return target


def test_unparsable_and_sop_uid_less_datasets_are_quarantined(start_listener, settings, tmp_path,
                                                              monkeypatch):
    # storescu refuses to send such files, so a pynetdicom client sends their raw bytes.
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)
    datasets = make_ct_series(synthetic_patient(4), SeriesGeometry(slices=2))
    files = write_series(datasets, tmp_path / "src")
    garbage = _with_body(files[0], tmp_path / "garbage.dcm", b"\xfe\xff\x00\xe0" * 300)
    del datasets[1].SOPInstanceUID  # the file meta keeps it, so the C-STORE request has one
    no_sop = tmp_path / "no-sop.dcm"
    datasets[1].save_as(no_sop, enforce_file_format=True)
    listener = start_listener()

    garbage_status = _send_raw(listener.port, garbage)
    no_sop_status = _send_raw(listener.port, no_sop)

    assert (garbage_status, no_sop_status) == (0xC001, 0xC002)
    reasons = [p.read_text() for p in sorted(settings.quarantine_dir.glob("*.reason.txt"))]
    assert reasons[0].startswith("reason: cannot parse the dataset")
    assert reasons[1].startswith("reason: SOPInstanceUID is missing")
    kept = sorted(settings.quarantine_dir.glob("*.dcm"))
    assert kept[0].read_bytes().endswith(b"\xfe\xff\x00\xe0" * 300)
    assert series_rows(settings.db_url) == {}
    with session_scope(settings.db_url) as session:
        kinds = session.scalars(select(Event.kind)).all()
    assert kinds == ["quarantined", "quarantined"]


def test_a_path_traversal_uid_writes_nothing_outside_the_data_root(
        start_listener, settings, tmp_path):
    datasets = make_ct_series(synthetic_patient(5), SeriesGeometry(slices=2))
    files = write_series([with_hostile_uids(d) for d in datasets], tmp_path / "hostile")
    outside = {p for p in tmp_path.rglob("*")}
    listener = start_listener()

    result = storescu(listener.port, files, check=False)

    assert result.stderr.count("Received Store Response (Error: CannotUnderstand)") == 2
    assert not Path("/tmp/evil").exists()
    assert not any(p.name == "escape" for p in tmp_path.parent.rglob("escape"))
    new_outside_data_root = {p for p in tmp_path.rglob("*")
                             if settings.data_root not in p.parents} - outside
    assert {p.name for p in new_outside_data_root} <= {"listener-0.log"}
    assert not any(settings.datastore_dir.rglob("*.dcm"))
    reasons = [p.read_text() for p in settings.quarantine_dir.glob("*.reason.txt")]
    assert len(reasons) == 2
    assert all("reason: StudyInstanceUID is not a valid DICOM UID" in r for r in reasons)
    assert all("evil" not in r for r in reasons)


def test_the_same_sop_instance_sent_twice_is_stored_once(start_listener, settings, tmp_path):
    files, study_uid, series_uid = write_ct(tmp_path / "ct", slices=5)
    listener = start_listener(quiet_seconds=1)

    storescu(listener.port, files + files[:2])

    series = wait_ready(settings.db_url, [series_uid])[series_uid]
    assert series.instance_count == 5
    assert len(files_under(settings.datastore_dir / study_uid / series_uid)) == 5
    assert "released: 5 stored, 2 duplicates" in listener.log()


def test_a_series_sent_again_after_it_was_ready_merges_into_the_same_folder(
        start_listener, settings, tmp_path):
    files, study_uid, series_uid = write_ct(tmp_path / "ct", slices=10)
    listener = start_listener(quiet_seconds=1)
    storescu(listener.port, files[:6])
    first = wait_ready(settings.db_url, [series_uid])[series_uid]

    storescu(listener.port, files[4:])

    wait_until(lambda: series_rows(settings.db_url)[series_uid].instance_count == 10
               and series_rows(settings.db_url)[series_uid].state == "ready")
    again = series_rows(settings.db_url)[series_uid]
    assert again.id == first.id
    assert again.ready_at > first.ready_at
    assert again.folder == first.folder
    assert len(files_under(Path(again.folder))) == 10
    assert round_folders(settings) == []


def test_a_listener_killed_mid_series_completes_it_after_restart(
        start_listener, settings, tmp_path):
    files, study_uid, series_uid = write_ct(tmp_path / "ct", slices=20)
    listener = start_listener(quiet_seconds=3)
    storescu(listener.port, files[:12])
    listener.kill()  # before the quiet period ends: the series is still receiving

    leftover = round_folders(settings)
    assert [p.name for p in leftover] == [f"{series_uid}.tmp-1"]
    assert series_rows(settings.db_url)[series_uid].state == "receiving"

    listener.start()
    resumed = wait_ready(settings.db_url, [series_uid])[series_uid]
    assert resumed.instance_count == 12
    assert "resuming a round left by a previous run (12 instances)" in listener.log()

    storescu(listener.port, files)  # the rest, and 12 again

    wait_until(lambda: series_rows(settings.db_url)[series_uid].instance_count == 20
               and series_rows(settings.db_url)[series_uid].state == "ready")
    assert len(files_under(settings.datastore_dir / study_uid / series_uid)) == 20
    assert round_folders(settings) == []


def test_c_store_is_refused_with_0xa700_while_free_disk_is_below_the_watermark(
        start_listener, settings, tmp_path):
    files, _, _ = write_ct(tmp_path / "ct", slices=3)
    listener = start_listener(min_free_disk="1000000TiB")

    result = storescu(listener.port, files, check=False)

    assert result.stderr.count("Received Store Response (Refused: OutOfResources)") == 3, \
        result.stderr
    assert not any(settings.datastore_dir.rglob("*.dcm"))
    assert series_rows(settings.db_url) == {}
    assert "refusing C-STORE with 0xA700 until space returns" in listener.log()


def test_tls_listener_accepts_a_tls_client(start_listener, settings, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    files, _, series_uid = write_ct(tmp_path / "ct", slices=3)
    listener = start_listener(tls_cert=cert, tls_key=key, quiet_seconds=1)

    plain = storescu(listener.port, files, check=False)
    secure = storescu(listener.port, files, extra=["+tla", "+cf", str(cert)], check=False)

    assert plain.returncode != 0
    assert secure.returncode == 0, secure.stderr
    assert wait_ready(settings.db_url, [series_uid])[series_uid].instance_count == 3
    assert "with TLS" in listener.log()
    assert os.access(cert, os.R_OK)


def test_c_store_is_accepted_again_once_space_returns(settings, tmp_path):
    # A full disk cannot be caused for real here: the free-space probe is injected.
    from dataclasses import replace

    from dicom_ops.intake.listener import Listener

    free = {"bytes": 10 << 20}
    listener = Listener(replace(settings, min_free_disk=100 << 20, quiet_seconds=1),
                        free_space=lambda _path: free["bytes"])
    listener.start(port=0)
    try:
        files, _, series_uid = write_ct(tmp_path / "ct", slices=4)
        refused = storescu(listener.port, files, check=False)
        free["bytes"] = 200 << 20
        accepted = storescu(listener.port, files)
        series = wait_ready(settings.db_url, [series_uid])[series_uid]
    finally:
        listener.stop()

    assert refused.stderr.count("Refused: OutOfResources") == 4
    assert "Refused" not in accepted.stderr
    assert series.instance_count == 4


def test_a_listener_on_a_port_in_use_fails_with_one_clear_line(cli_env):
    import socket
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "dicom_ops.cli", "listener", "--port",
                                 str(port)], env=cli_env, capture_output=True, text=True,
                                timeout=60)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == \
        f"dicom-ops listener: cannot listen on 127.0.0.1:{port}: Address already in use"


def _listener_with_sync(settings, sync):
    # A failing or slow fsync cannot be caused for real here: the sync step is injected.
    from dataclasses import replace

    from dicom_ops.intake.durability import Durability
    from dicom_ops.intake.listener import Listener

    listener = Listener(replace(settings, quiet_seconds=1))
    listener.durability = Durability(sync=sync)
    listener.start(port=0)
    return listener


def test_the_release_is_answered_only_once_every_file_is_on_disk(settings, tmp_path):
    import time

    from dicom_ops.files import fsync_file

    synced = []

    def slow_disk(path):
        time.sleep(0.2)
        fsync_file(path)
        synced.append(path.name)

    files, _, series_uid = write_ct(tmp_path / "ct", slices=6)
    listener = _listener_with_sync(settings, slow_disk)
    try:
        storescu(listener.port, files)
        synced_when_released = len(synced)
        series = wait_ready(settings.db_url, [series_uid])[series_uid]
    finally:
        listener.stop()

    assert synced_when_released == 6
    assert series.instance_count == 6


def test_an_instance_that_cannot_be_synced_fails_its_round_and_a_resend_completes(
        settings, tmp_path):
    failures = {"left": 1}

    def failing_disk(path):
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(5, "Input/output error")

    files, _, series_uid = write_ct(tmp_path / "ct", slices=4)
    listener = _listener_with_sync(settings, failing_disk)
    try:
        storescu(listener.port, files)
        wait_until(lambda: series_rows(settings.db_url)[series_uid].state == "error",
                   message="the round did not fail")
        failed = series_rows(settings.db_url)[series_uid]
        storescu(listener.port, files)
        series = wait_ready(settings.db_url, [series_uid])[series_uid]
    finally:
        listener.stop()

    assert "fsync failed" in failed.state_detail
    assert "send the series again" in failed.state_detail
    assert series.instance_count == 4
    assert len(files_under(settings.datastore_dir)) == 4
