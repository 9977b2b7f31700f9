"""C-STORE of the delivered RTSTRUCT to real DICOM nodes: Orthanc (checked through its REST
API) and dcmtk's storescp (checked on disk), with retries against nodes that are not
there yet or that keep refusing."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from dicom_ops.delivery.cstore import DicomNode, StoreFailed, send_files
from dicom_ops.delivery.origin import deliver_to_origin
from dicom_ops.delivery.reidentify import reidentify
from dicom_ops.uids import new_uid
from pydicom.uid import RTStructureSetStorage
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt

from tests.support.dcmtk import dcmtk_tool
from tests.support.deidentified_job import DeidentifiedJob, deidentified_job
from tests.support.postgres import free_port

CALLING_AET = "DRAWCLIENT"
STORESCP_AET = "STORESCP"
NO_WAIT = 0.01


def delivered_rtstruct(job: DeidentifiedJob, folder: Path) -> Path:
    """The re-identified RTSTRUCT as written into the origin folder."""
    rtstruct = reidentify(job.rtstruct(), job.uid_map, job.subject, pseudonym=job.pseudonym,
                          new_sop_instance_uid=new_uid(), new_series_instance_uid=new_uid())
    folder.mkdir(parents=True, exist_ok=True)
    return deliver_to_origin(rtstruct, folder)


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"storescp exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"storescp did not listen on {port} within {seconds} s")


@pytest.fixture
def start_storescp(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Starts dcmtk storescp on a port; returns the folder it stores into. Stopped after."""
    binary = dcmtk_tool("storescp")
    processes: list[subprocess.Popen] = []

    def start(port: int, *options: str) -> Path:
        out_dir = tmp_path / f"storescp-{port}"
        out_dir.mkdir(exist_ok=True)
        process = subprocess.Popen(
            [binary, "--aetitle", STORESCP_AET, "--output-directory", str(out_dir), *options,
             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        wait_for_port(port, process)
        return out_dir

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def answering_node() -> Iterator[Callable[..., tuple[DicomNode, list[str]]]]:
    """A pynetdicom storage SCP that answers C-STOREs with the given statuses in turn
    (for refusals neither Orthanc nor storescp can be made to give); returns the node
    and the SOP Instance UIDs it kept."""
    servers = []

    def start(*statuses: int) -> tuple[DicomNode, list[str]]:
        answers = list(statuses)
        kept: list[str] = []

        def on_store(event) -> int:
            status = answers.pop(0) if answers else 0x0000
            if status in (0x0000, 0xB000):
                kept.append(str(event.request.AffectedSOPInstanceUID))
            return status

        ae = AE(ae_title="STATUSNODE")
        ae.add_supported_context(RTStructureSetStorage, ALL_TRANSFER_SYNTAXES)
        port = free_port()
        servers.append(ae.start_server(("127.0.0.1", port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, on_store)]))
        return DicomNode("127.0.0.1", port, "STATUSNODE"), kept

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture(scope="module")
def job() -> DeidentifiedJob:
    return deidentified_job(5)


def test_rtstruct_is_stored_in_orthanc_under_the_original_patient(job, tmp_path, orthanc):
    # given the re-identified RTSTRUCT in the origin folder
    path = delivered_rtstruct(job, tmp_path / "origin")
    sop_uid = pydicom.dcmread(path).SOPInstanceUID

    # when it is sent to the PACS
    report = send_files([path], orthanc.node, CALLING_AET)

    # then the PACS shows it, filed under the original patient and study
    assert report.attempts == 1 and [s.status for s in report.stored] == [0x0000]
    stored = orthanc.instance(sop_uid)
    assert stored is not None
    assert stored["PatientID"] == job.patient.patient_id
    assert stored["Modality"] == "RTSTRUCT"
    assert stored["StudyInstanceUID"] == job.originals[0].StudyInstanceUID


@pytest.mark.dcmtk
def test_rtstruct_is_stored_by_storescp_on_disk(job, tmp_path, start_storescp):
    path = delivered_rtstruct(job, tmp_path / "origin")
    port = free_port()
    out_dir = start_storescp(port)

    report = send_files([path], DicomNode("127.0.0.1", port, STORESCP_AET), CALLING_AET)

    received = list(out_dir.iterdir())
    assert report.attempts == 1 and len(received) == 1
    stored = pydicom.dcmread(received[0])
    assert stored.SOPInstanceUID == pydicom.dcmread(path).SOPInstanceUID
    assert stored.PatientID == job.patient.patient_id
    assert stored.ROIContourSequence[0].ContourSequence[0].ContourData == \
        pydicom.dcmread(path).ROIContourSequence[0].ContourSequence[0].ContourData


@pytest.mark.dcmtk
def test_node_that_is_not_listening_yet_gets_the_file_on_a_retry(job, tmp_path, start_storescp):
    # given nothing listens on the destination's port yet
    path = delivered_rtstruct(job, tmp_path / "origin")
    port = free_port()
    waits: list[float] = []
    out_dirs: list[Path] = []

    def node_comes_up_while_we_wait(seconds: float) -> None:
        waits.append(seconds)
        if not out_dirs:
            out_dirs.append(start_storescp(port))

    # when we send, and the node comes up during the wait after the first refusal
    report = send_files([path], DicomNode("127.0.0.1", port, STORESCP_AET), CALLING_AET,
                        retries=3, backoff=2.0, sleep=node_comes_up_while_we_wait)

    # then the second attempt stores it
    assert report.attempts == 2
    assert waits == [2.0]
    assert len(list(out_dirs[0].iterdir())) == 1


@pytest.mark.dcmtk
def test_node_that_keeps_refusing_fails_naming_the_node_after_the_retries(job, tmp_path,
                                                                        start_storescp):
    # given a node that rejects every association
    path = delivered_rtstruct(job, tmp_path / "origin")
    port = free_port()
    start_storescp(port, "--refuse")
    waits: list[float] = []

    # when we send with two retries
    with pytest.raises(StoreFailed) as failed:
        send_files([path], DicomNode("127.0.0.1", port, STORESCP_AET), CALLING_AET,
                   retries=2, backoff=0.5, sleep=waits.append)

    # then three attempts were made, waiting longer each time, and the error says where
    assert waits == [0.5, 1.0]
    message = str(failed.value)
    assert message.startswith(f"C-STORE to STORESCP@127.0.0.1:{port} failed after 3 attempts: "
                              "association rejected")
    assert failed.value.attempts == 3


def test_node_with_nothing_listening_fails_naming_the_node(job, tmp_path):
    path = delivered_rtstruct(job, tmp_path / "origin")
    port = free_port()

    with pytest.raises(StoreFailed, match=rf"^C-STORE to PACS@127\.0\.0\.1:{port} failed after 2 "
                                          r"attempts: connection failed"):
        send_files([path], DicomNode("127.0.0.1", port, "PACS"), CALLING_AET, retries=1,
                   backoff=NO_WAIT)


def test_wrong_called_ae_title_fails_at_once_with_a_hint(job, tmp_path, orthanc):
    # given the destination is configured with an AE title Orthanc does not answer to
    path = delivered_rtstruct(job, tmp_path / "origin")
    node = DicomNode("127.0.0.1", orthanc.dicom_port, "NOT_ORTHANC")
    waits: list[float] = []

    with pytest.raises(StoreFailed) as failed:
        send_files([path], node, CALLING_AET, sleep=waits.append)

    # then no retry (asking again cannot help) and the message says what to check
    assert waits == [] and failed.value.attempts == 1
    assert f"NOT_ORTHANC@127.0.0.1:{orthanc.dicom_port}" in str(failed.value)
    assert "check the called AE title configured for this destination" in str(failed.value)


def test_file_of_a_class_the_node_does_not_take_fails_naming_the_class(tmp_path, orthanc):
    # given a file whose SOP class Orthanc does not accept
    ds = deidentified_job(6).originals[0]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.8.498.999"
    path = tmp_path / "odd.dcm"
    ds.save_as(path, enforce_file_format=True)

    with pytest.raises(StoreFailed, match="accepted none of the proposed SOP classes") as failed:
        send_files([path], orthanc.node, CALLING_AET, sleep=lambda s: None)

    assert failed.value.attempts == 1


@pytest.mark.dcmtk
def test_node_that_aborts_while_receiving_fails_after_the_retries(job, tmp_path, start_storescp):
    path = delivered_rtstruct(job, tmp_path / "origin")
    port = free_port()
    start_storescp(port, "--abort-during")

    with pytest.raises(StoreFailed, match=rf"STORESCP@127\.0\.0\.1:{port} failed after 2 attempts: "
                                          r"association aborted while sending file 1 "
                                          r"\(RT Structure Set Storage\)"):
        send_files([path], DicomNode("127.0.0.1", port, STORESCP_AET), CALLING_AET, retries=1,
                   sleep=lambda seconds: None)


def test_node_out_of_resources_gets_the_file_on_a_retry(job, tmp_path, answering_node):
    path = delivered_rtstruct(job, tmp_path / "origin")
    node, kept = answering_node(0xA700)

    report = send_files([path], node, CALLING_AET, sleep=lambda seconds: None)

    assert report.attempts == 2
    assert kept == [pydicom.dcmread(path).SOPInstanceUID]


def test_node_refusing_the_data_set_fails_at_once_naming_the_status(job, tmp_path,
                                                                    answering_node):
    path = delivered_rtstruct(job, tmp_path / "origin")
    node, kept = answering_node(0xA900)
    waits: list[float] = []

    with pytest.raises(StoreFailed) as failed:
        send_files([path], node, CALLING_AET, sleep=waits.append)

    assert str(failed.value) == (
        f"C-STORE to STATUSNODE@127.0.0.1:{node.port} failed after 1 attempt: the node refused "
        "file 1 (RT Structure Set Storage) with status 0xA900 (Data Set Does Not Match SOP Class)")
    assert failed.value.status == 0xA900 and waits == [] and kept == []


def test_file_stored_with_a_warning_counts_as_stored_and_is_reported(job, tmp_path,
                                                                     answering_node):
    path = delivered_rtstruct(job, tmp_path / "origin")
    node, kept = answering_node(0xB000)

    report = send_files([path], node, CALLING_AET)

    assert len(kept) == 1
    assert [(w.path, w.status) for w in report.warnings] == [(path, 0xB000)]


def test_files_stored_before_a_transient_failure_are_not_sent_again(job, tmp_path,
                                                                    answering_node):
    # given three RTSTRUCTs, and a node that runs out of resources on the second
    paths = [delivered_rtstruct(job, tmp_path / f"origin{i}") for i in range(3)]
    node, kept = answering_node(0x0000, 0xA700)

    report = send_files(paths, node, CALLING_AET, sleep=lambda seconds: None)

    assert report.attempts == 2
    assert kept == [pydicom.dcmread(p).SOPInstanceUID for p in paths]  # each exactly once
