"""TLS on our outgoing associations (C-STORE and C-ECHO to dcmtk's storescp started with
``+tls``, a throwaway CA), and STOW-RS delivery to Orthanc's DICOMweb plugin."""

from __future__ import annotations

import pydicom
import pytest
from dicom_ops.delivery.cstore import DicomNode, StoreFailed, send_files
from dicom_ops.delivery.dicomweb import DicomWebFailed, DicomWebNode, stow_files
from dicom_ops.delivery.tls import ClientTls
from dicom_ops.pacs import dimse
from dicom_ops.pacs.errors import PacsError

from tests.integration.delivery.test_cstore_to_destinations import (  # noqa: F401
    CALLING_AET,
    STORESCP_AET,
    delivered_rtstruct,
    job,
    start_storescp,
)
from tests.support.pacs import pacs_orthanc  # noqa: F401
from tests.support.postgres import free_port
from tests.support.tls import test_pki  # noqa: F401


@pytest.fixture
def tls_storescp(start_storescp, test_pki):  # noqa: F811
    port = free_port()
    out_dir = start_storescp(port, "+tls", str(test_pki.server_key), str(test_pki.server_cert),
                             "-ic")  # -ic: no client certificate asked of us
    return port, out_dir


@pytest.mark.dcmtk
def test_rtstruct_is_stored_over_tls_by_a_node_whose_ca_we_trust(  # noqa: F811
        job, tmp_path, tls_storescp, test_pki):  # noqa: F811
    port, out_dir = tls_storescp
    path = delivered_rtstruct(job, tmp_path / "origin")
    node = DicomNode("127.0.0.1", port, STORESCP_AET, tls=ClientTls(ca_file=test_pki.ca_file))

    dimse.echo(node, CALLING_AET)
    report = send_files([path], node, CALLING_AET)

    received = list(out_dir.iterdir())
    assert report.attempts == 1 and len(received) == 1
    assert pydicom.dcmread(received[0]).SOPInstanceUID == pydicom.dcmread(path).SOPInstanceUID


@pytest.mark.dcmtk
def test_a_node_with_a_certificate_we_do_not_trust_is_refused_and_nothing_is_sent(
        job, tmp_path, tls_storescp, test_pki):  # noqa: F811
    port, out_dir = tls_storescp
    path = delivered_rtstruct(job, tmp_path / "origin")
    node = DicomNode("127.0.0.1", port, STORESCP_AET,
                     tls=ClientTls(ca_file=test_pki.other_ca_file))

    with pytest.raises(StoreFailed, match="TLS handshake failed"):
        send_files([path], node, CALLING_AET, retries=0)
    with pytest.raises(PacsError, match="TLS handshake failed"):
        dimse.echo(node, CALLING_AET)
    assert list(out_dir.iterdir()) == []


@pytest.mark.dcmtk
def test_plain_dicom_to_a_tls_node_fails_clearly(job, tmp_path, tls_storescp):  # noqa: F811
    port, _ = tls_storescp
    path = delivered_rtstruct(job, tmp_path / "origin")

    with pytest.raises(StoreFailed, match="STORESCP@127.0.0.1"):
        send_files([path], DicomNode("127.0.0.1", port, STORESCP_AET), CALLING_AET, retries=0)


def test_rtstruct_is_stored_over_stow_rs_with_basic_auth(job, tmp_path, pacs_orthanc):  # noqa: F811
    path = delivered_rtstruct(job, tmp_path / "origin")
    sop_uid = pydicom.dcmread(path).SOPInstanceUID

    report = stow_files([path], pacs_orthanc.dicomweb_node())

    assert report.stored == 1
    stored = pacs_orthanc.instance(sop_uid)
    assert stored is not None and stored["PatientID"] == job.patient.patient_id


def test_stow_rs_with_wrong_credentials_fails_naming_the_node_and_the_status(
        job, tmp_path, pacs_orthanc):  # noqa: F811
    path = delivered_rtstruct(job, tmp_path / "origin")
    node = DicomWebNode(pacs_orthanc.dicomweb_url, username="pacs", password="wrong",
                        name="pacs_web")

    with pytest.raises(DicomWebFailed, match="pacs_web.*HTTP 401.*login/password") as failure:
        stow_files([path], node, retries=0)
    assert not failure.value.transient
    assert pacs_orthanc.instance(pydicom.dcmread(path).SOPInstanceUID) is None
