"""A real Orthanc for the tests: one per test session, on free loopback ports, with a
generated configuration and its storage in a temporary directory.

HTTP is reachable from loopback only (``RemoteAccessAllowed`` false) and needs no
password there; the DICOM port takes C-STORE from any calling AE addressed to
``ORTHANC``. ``OrthancServer`` lists what it stored through the REST API, so a
test checks what a PACS would really show.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from dicom_ops.delivery.cstore import DicomNode

from tests.support.postgres import free_port

ORTHANC_AET = "ORTHANC"
STARTUP_SECONDS = 30


class OrthancUnavailable(RuntimeError):
    pass


@dataclass
class OrthancServer:
    base: Path
    http_port: int
    dicom_port: int
    process: subprocess.Popen | None = None
    auth: tuple[str, str] | None = None  # HTTP basic credentials, when the config asks for them

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def node(self) -> DicomNode:
        return DicomNode("127.0.0.1", self.dicom_port, ORTHANC_AET)

    def config(self) -> dict[str, Any]:
        storage = str(self.base / "storage")
        return {
            "Name": "dicom-ops-test",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": ORTHANC_AET,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowStore": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "HttpCompressionEnabled": False,
            "Plugins": [],
            "LuaScripts": [],
            "ConcurrentJobs": 1,
            "SaveJobs": False,
            "StorageCompression": False,
        }

    def start(self) -> None:
        config_path = self.base / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        log_path = self.base / "orthanc.log"
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen([orthanc_binary(), str(config_path)], cwd=self.base,
                                            stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OrthancUnavailable(f"Orthanc exited: {log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/system", timeout=1, auth=self.auth).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise OrthancUnavailable(f"Orthanc did not answer within {STARTUP_SECONDS} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)

    # --- REST helpers ----------------------------------------------------------------

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.url}{path}", timeout=10, auth=self.auth)
        response.raise_for_status()
        return response.json()

    def stored_instances(self) -> list[dict[str, Any]]:
        """Every stored instance as Orthanc's simplified tags (keyword -> value)."""
        return [self.get(f"/instances/{orthanc_id}/simplified-tags")
                for orthanc_id in self.get("/instances")]

    def instance(self, sop_instance_uid: str) -> dict[str, Any] | None:
        """The stored instance with this SOP Instance UID (simplified tags), or None."""
        response = requests.post(f"{self.url}/tools/find", timeout=10, auth=self.auth, json={
            "Level": "Instance", "Query": {"SOPInstanceUID": sop_instance_uid}})
        response.raise_for_status()
        found = response.json()
        if not found:
            return None
        return self.get(f"/instances/{found[0]}/simplified-tags")


def orthanc_binary() -> str:
    found = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if os.path.exists("/usr/sbin/Orthanc")
                                        else None)
    if found is None:
        raise OrthancUnavailable("Orthanc is not installed (apt-get install orthanc)")
    return found


def start_orthanc() -> OrthancServer:
    http_port = free_port()
    dicom_port = free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    server = OrthancServer(base=Path(tempfile.mkdtemp(prefix="dicom-ops-orthanc-")),
                           http_port=http_port, dicom_port=dicom_port)
    server.start()
    return server


@pytest.fixture(scope="session")
def orthanc():
    """A running Orthanc for the whole session (a failure in CI, a skip elsewhere)."""
    try:
        server = start_orthanc()
    except OrthancUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Orthanc is required in CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()
