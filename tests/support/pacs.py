"""PACSes for the query/retrieve tests, all real peers on loopback:

- ``pacs_orthanc``: Orthanc with the DICOMweb plugin, HTTP basic auth, C-FIND, C-MOVE
  and C-GET allowed, and DICOM TLS on a second port (``tls_dicom_port``... see
  ``start_pacs_orthanc(tls=...)``); ``declare_listener`` tells it where our listener
  is so a C-MOVE can reach it.
- ``start_dcmqrscp``: dcmtk's Q/R SCP over an index made by ``dcmqridx``.
- ``start_scripted_pacs``: a pynetdicom Q/R SCP answering C-FIND from given lists, for
  answers no real PACS gives on demand (thousands of studies, series without a UID).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from dicom_ops.delivery.cstore import DicomNode
from dicom_ops.delivery.dicomweb import DicomWebNode
from dicom_ops.delivery.tls import ClientTls
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from tests.support.dcmtk import dcmtk_tool
from tests.support.orthanc import OrthancServer, OrthancUnavailable
from tests.support.postgres import free_port
from tests.support.tls import TestPki

PACS_USER, PACS_PASSWORD = "pacs", "pacs-secret"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
LISTENER_MODALITY = "dicomops"


@dataclass
class PacsOrthanc(OrthancServer):
    pki: TestPki | None = None

    def config(self) -> dict:
        config = super().config()
        config.update({
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "AuthenticationEnabled": True,
            "RegisteredUsers": {PACS_USER: PACS_PASSWORD},
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowGet": True,
            "DicomCheckCalledAet": True,
        })
        if self.pki is not None:
            config.update({
                "DicomTlsEnabled": True,
                "DicomTlsCertificate": str(self.pki.server_cert),
                "DicomTlsPrivateKey": str(self.pki.server_key),
                "DicomTlsTrustedCertificates": str(self.pki.ca_file),
                "DicomTlsRemoteCertificateRequired": False,
            })
        return config

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def dicomweb_node(self, name: str = "pacs_web") -> DicomWebNode:
        return DicomWebNode(self.dicomweb_url, username=PACS_USER, password=PACS_PASSWORD,
                            name=name)

    def dicom_node(self) -> DicomNode:
        tls = ClientTls(ca_file=self.pki.ca_file) if self.pki else None
        return DicomNode("127.0.0.1", self.dicom_port, "ORTHANC", tls=tls)

    def upload(self, paths: Iterable[Path]) -> None:
        for path in paths:
            response = requests.post(f"{self.url}/instances", data=Path(path).read_bytes(),
                                     auth=self.auth, timeout=30)
            response.raise_for_status()

    def declare_listener(self, aet: str, port: int) -> None:
        """Our listener as a modality: where Orthanc sends what we C-MOVE."""
        response = requests.put(f"{self.url}/modalities/{LISTENER_MODALITY}", auth=self.auth,
                                json={"AET": aet, "Host": "127.0.0.1", "Port": port},
                                timeout=10)
        response.raise_for_status()

    def clear(self) -> None:
        for patient in self.get("/patients"):
            requests.delete(f"{self.url}/patients/{patient}", auth=self.auth, timeout=30)


def start_pacs_orthanc(pki: TestPki | None = None) -> PacsOrthanc:
    if not os.path.exists(DICOMWEB_PLUGIN):
        raise OrthancUnavailable("the Orthanc DICOMweb plugin is not installed "
                                 "(apt-get install orthanc-dicomweb)")
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    server = PacsOrthanc(base=Path(tempfile.mkdtemp(prefix="dicom-ops-pacs-")),
                         http_port=http_port, dicom_port=dicom_port,
                         auth=(PACS_USER, PACS_PASSWORD), pki=pki)
    server.start()
    return server


def _started(pki: TestPki | None) -> Iterator[PacsOrthanc]:
    try:
        server = start_pacs_orthanc(pki)
    except OrthancUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Orthanc is required in CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pacs_orthanc() -> Iterator[PacsOrthanc]:
    """Orthanc as a PACS (plain DICOM, DICOMweb with basic auth) for the whole session;
    tests ``clear()`` it before they fill it."""
    yield from _started(None)


@pytest.fixture(scope="session")
def tls_pacs_orthanc(test_pki) -> Iterator[PacsOrthanc]:
    """Orthanc whose DICOM port speaks TLS only, with a certificate from ``test_pki``."""
    yield from _started(test_pki)


# --- dcmtk dcmqrscp --------------------------------------------------------------------

DCMQRSCP_AET = "DCMQRSCP"


@dataclass
class Dcmqrscp:
    port: int
    storage: Path
    process: subprocess.Popen

    @property
    def node(self) -> DicomNode:
        return DicomNode("127.0.0.1", self.port, DCMQRSCP_AET)


@pytest.fixture
def start_dcmqrscp(tmp_path: Path) -> Iterator[Callable[..., Dcmqrscp]]:
    """``start(files, move_destinations={AET: port})``: dcmqrscp serving ``files`` (indexed
    where they lie, so deleting one afterwards makes its C-MOVE sub-operation fail)."""
    binary = dcmtk_tool("dcmqrscp")
    indexer = dcmtk_tool("dcmqridx")
    started: list[subprocess.Popen] = []

    def start(files: Iterable[Path], move_destinations: dict[str, int]) -> Dcmqrscp:
        storage = tmp_path / "dcmqrscp-db"
        storage.mkdir(exist_ok=True)
        files = [str(f) for f in files]
        subprocess.run([indexer, str(storage), *files], check=True, capture_output=True)
        port = free_port()
        hosts = "\n".join(f"dest{n} = ({aet}, 127.0.0.1, {dest_port})"
                          for n, (aet, dest_port) in enumerate(move_destinations.items()))
        config = tmp_path / "dcmqrscp.cfg"
        config.write_text(f"""NetworkTCPPort = {port}
MaxPDUSize = 16384
MaxAssociations = 16
HostTable BEGIN
{hosts}
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
{DCMQRSCP_AET} {storage} RW (200, 1024mb) ANY
AETable END
""")
        log = (tmp_path / "dcmqrscp.log").open("wb")
        # dcmqrscp forks a process per association (its default here).
        process = subprocess.Popen([binary, "-c", str(config), "--disable-get", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        from tests.integration.delivery.test_cstore_to_destinations import wait_for_port

        wait_for_port(port, process)
        return Dcmqrscp(port, storage, process)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


# --- a scripted Q/R SCP (pynetdicom) ---------------------------------------------------


@dataclass
class ScriptedPacs:
    node: DicomNode
    studies: list[Dataset]
    series: dict[str, list[Dataset]] = field(default_factory=dict)  # by Study Instance UID
    series_queries: list[str] = field(default_factory=list)  # studies asked about, in order


@pytest.fixture
def start_scripted_pacs() -> Iterator[Callable[..., ScriptedPacs]]:
    servers = []

    def start(studies: list[Dataset], series: dict[str, list[Dataset]], *,
              require_calling_aet: Iterable[str] = ()) -> ScriptedPacs:
        port = free_port()
        pacs = ScriptedPacs(DicomNode("127.0.0.1", port, "SCRIPTED"), studies, series)

        def on_find(event):
            identifier = event.identifier
            if identifier.QueryRetrieveLevel == "STUDY":
                for study in pacs.studies:
                    yield 0xFF00, study
            else:
                pacs.series_queries.append(str(identifier.StudyInstanceUID))
                for answer in pacs.series.get(str(identifier.StudyInstanceUID), []):
                    yield 0xFF00, answer

        ae = AE(ae_title="SCRIPTED")
        ae.require_calling_aet = list(require_calling_aet)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(Verification)
        servers.append(ae.start_server(("127.0.0.1", port), block=False,
                                       evt_handlers=[(evt.EVT_C_FIND, on_find)]))
        return pacs

    yield start
    for server in servers:
        server.shutdown()


