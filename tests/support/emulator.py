"""The DRAW emulator as a real subprocess for tests, and uploads to send it.

``draw_emulator`` (fixture): a running emulator (one per test module, faults
cleared around each test) with ``base_url``, ``token``, ``refresh_token``,
``set_faults(**faults)``, ``clear_faults()``, ``restart()``, ``stop()``,
``client()`` and ``request()``. ``start_emulator(...)`` starts a private one
with other options. ``build_upload_zip(series, template, zip_path)`` writes a
valid upload and returns its sha256.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from dicom_ops.config import REPO_ROOT
from dicom_ops.devtools.synthetic import SeriesGeometry, make_ct_series, synthetic_patient
from dicom_ops.draw.client import DrawClient
from pydicom.dataset import Dataset

TEMPLATE_NAME = "autosegmentation_template.yml"
_READY_LINE = re.compile(r"DRAW emulator listening on http://(?P<host>[^\s]+):(?P<port>\d+)")

DEFAULT_TEMPLATE: dict[str, Any] = {
    "name": "Thorax (emulated)",
    "protocol": "THORAX",
    "models": {
        1: {
            "name": "Thorax_Emulated",
            "config": "3d_fullres",
            "trainer_name": "nnUNetTrainer",
            "postprocess": "none",
            "map": {1: "External", 2: "Lung_L", 3: "Lung_R", 4: "Heart"},
        },
    },
}


class EmulatorFailed(RuntimeError):
    pass


@dataclass
class DrawEmulator:
    """One emulator subprocess (``python -m dicom_ops.cli emulator``) on loopback."""

    data_dir: Path
    token: str
    refresh_token: str
    options: tuple[str, ...] = ()
    port: int = 0
    log_path: Path = field(init=False)
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- life -------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> DrawEmulator:
        if self.process is not None and self.process.poll() is None:
            return self
        command = [sys.executable, "-m", "dicom_ops.cli", "emulator",
                   "--host", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", str(self.data_dir),
                   f"--token={self.token}", f"--refresh-token={self.refresh_token}",
                   *self.options]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_OPS_")}
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
        self.port = self._wait_for_port(log_start, timeout)
        self._wait_for_health(timeout)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> DrawEmulator:
        """Stop and start again on the same port and data dir (faults from flags only)."""
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait_for_port(self, log_start: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(log_start)
                match = _READY_LINE.search(log.read().decode(errors="replace"))
            if match:
                return int(match.group("port"))
            self._fail_if_exited()
            time.sleep(0.05)
        raise EmulatorFailed(f"emulator did not report its port:\n{self.log_text()[-3000:]}")

    def _wait_for_health(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.base_url}/api/health/", timeout=2)
                return  # any answer (busy included) means it serves
            except requests.ConnectionError:
                self._fail_if_exited()
                time.sleep(0.05)
        raise EmulatorFailed(f"emulator did not answer:\n{self.log_text()[-3000:]}")

    def _fail_if_exited(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise EmulatorFailed(f"emulator exited with {self.process.returncode}:\n"
                                 f"{self.log_text()[-3000:]}")

    # --- talking to it -----------------------------------------------------------------

    def request(self, method: str, path: str, *, token: str | None = "default",
                **kwargs: Any) -> requests.Response:
        """Raw HTTP; ``token="default"`` sends the configured token, None sends none."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        return requests.request(method, self.base_url + path, headers=headers, timeout=30,
                                **kwargs)

    def client(self, **overrides: Any) -> DrawClient:
        arguments = {"access_token": self.token, "refresh_token": self.refresh_token,
                     "timeout": 30.0, **overrides}
        return DrawClient(self.base_url, **arguments)

    def set_faults(self, **faults: Any) -> dict:
        response = self.request("POST", "/admin/faults", json=faults)
        response.raise_for_status()
        return response.json()

    def clear_faults(self) -> dict:
        response = self.request("DELETE", "/admin/faults")
        response.raise_for_status()
        return response.json()

    def tasks(self) -> list[dict]:
        response = self.request("GET", "/admin/tasks")
        response.raise_for_status()
        return response.json()

    def forget_task(self, task_id: str) -> None:
        self.request("DELETE", f"/admin/tasks/{task_id}").raise_for_status()

    def upload(self, zip_path: Path, checksum: str | None = None, **kwargs: Any
               ) -> requests.Response:
        """POST /api/upload/ as the DRAW client does (checksum computed unless given)."""
        checksum = checksum if checksum is not None else sha256_of(zip_path)
        with zip_path.open("rb") as handle:
            return self.request("POST", "/api/upload/",
                                files={"file": (zip_path.name, handle, "application/zip")},
                                data={"checksum": checksum, "client_id": "tests"}, **kwargs)

    def wait_for_status(self, task_id: str, statuses: Iterable[str] = (
            "SEGMENTATION COMPLETED", "FAILED"), timeout: float = 60.0) -> dict:
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        while True:
            body = self.request("GET", f"/api/upload/{task_id}/status/").json()
            if body.get("status") in wanted or time.monotonic() > deadline:
                return body
            time.sleep(0.05)


def start_emulator(
    folder: Path,
    *,
    delay: float = 0.0,
    jitter: float = 0.0,
    token_lifetime: float | None = None,
    keep_uploads: bool = False,
    max_unpacked_size: str = "64MiB",
    faults: Mapping[str, Any] | None = None,
    port: int = 0,
) -> DrawEmulator:
    """Start an emulator with its data in ``folder/emulator`` and fresh random tokens."""
    options = ["--delay", str(delay), "--jitter", str(jitter),
               "--max-unpacked-size", max_unpacked_size]
    if token_lifetime is not None:
        options += ["--token-lifetime", str(token_lifetime)]
    if keep_uploads:
        options.append("--keep-uploads")
    for name, value in (faults or {}).items():
        options += ["--fault", f"{name}={value}"]
    emulator = DrawEmulator(data_dir=folder / "emulator", token=secrets.token_urlsafe(16),
                            refresh_token=secrets.token_urlsafe(16), options=tuple(options),
                            port=port)
    return emulator.start()


@pytest.fixture(scope="module")
def draw_emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrawEmulator]:
    emulator = start_emulator(tmp_path_factory.mktemp("draw"))
    yield emulator
    emulator.stop()


@pytest.fixture
def draw_emulator(draw_emulator_process: DrawEmulator) -> Iterator[DrawEmulator]:
    """A running emulator (shared by the module's tests) with no faults on."""
    draw_emulator_process.start()
    draw_emulator_process.clear_faults()
    yield draw_emulator_process
    if draw_emulator_process.process is not None:
        draw_emulator_process.clear_faults()


# --- uploads ----------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def template_yaml(template: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(template), sort_keys=False)


def build_upload_zip(
    series: Sequence[Dataset] | Sequence[Path],
    template: Mapping[str, Any] | str | None,
    zip_path: Path,
    *,
    extra_members: Mapping[str, bytes] | None = None,
) -> str:
    """A DRAW upload: the series as DICOM files plus the template; returns the sha256.

    ``template`` may be a dict (written as YAML), raw text, or None (left out).
    ``extra_members`` adds arbitrary members (names taken literally) for bad uploads.
    """
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, item in enumerate(series, start=1):
            if isinstance(item, Dataset):
                buffer = io.BytesIO()
                item.save_as(buffer, enforce_file_format=True)
                archive.writestr(f"series/CT{index:05d}.dcm", buffer.getvalue())
            else:
                archive.write(item, f"series/{Path(item).name}")
        if template is not None:
            text = template if isinstance(template, str) else template_yaml(template)
            archive.writestr(TEMPLATE_NAME, text)
        for name, data in (extra_members or {}).items():
            member = zipfile.ZipInfo(name)  # the name exactly as given, backslashes and all
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, data)
    return sha256_of(zip_path)


def small_series(patient_index: int = 0, slices: int = 10, size: int = 64) -> list[Dataset]:
    """A fast synthetic CT series (64 x 64, 10 slices by default) with a segmentable phantom."""
    geometry = SeriesGeometry(slices=slices, rows=size, columns=size,
                              pixel_spacing=480.0 / size)
    return make_ct_series(synthetic_patient(patient_index), geometry)


def make_upload(folder: Path, *, series: Sequence[Dataset] | None = None,
                template: Mapping[str, Any] | str | None = None, name: str = "upload.zip"
                ) -> tuple[Path, str, list[Dataset]]:
    """Write a valid upload zip into ``folder``: (zip path, sha256, the series in it)."""
    images = list(series if series is not None else small_series())
    zip_path = folder / name
    checksum = build_upload_zip(images, DEFAULT_TEMPLATE if template is None else template,
                                zip_path)
    return zip_path, checksum, images
