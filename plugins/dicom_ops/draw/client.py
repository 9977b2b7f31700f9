"""The DRAW server's REST API as verbs: health, models, upload, status, download, confirm.

Knows URLs and tokens and nothing about Airflow; the hook builds one from the
``draw_default`` connection. On a 401 it refreshes the access token once and
repeats the call once; a second 401 is a :class:`DrawAuthError`. After a refresh
the new tokens are on ``access_token`` / ``refresh_token`` for the caller to keep.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from dicom_ops.draw.errors import (
    DrawAuthError,
    DrawBusy,
    DrawChecksumMismatch,
    DrawError,
    DrawNotFound,
    DrawRejected,
    DrawTransientError,
)
from dicom_ops.files import atomic_writer

CHECKSUM_HEADER = "X-File-Checksum"
_CHUNK = 1024 * 1024
DOWNLOAD_MODE = 0o600  # only we read a download; delivery writes its own copy for others
_DETAIL_CHARS = 300

_STATES = {
    "PENDING": "pending",
    "PROCESSING": "processing",
    "SEGMENTATION COMPLETED": "completed",
    "SEGMENTATION COMPLETE": "completed",
    "SEGMENTATION RETRIEVED": "completed",
    # after a download / a confirm: the result exists (or existed) on the server
    "DELIVERED TO CLIENT": "completed",
    "TRANSFER COMPLETED": "completed",
    "FAILED": "failed",
}


def normalise_status(raw: str) -> str:
    """One of pending, processing, completed, failed, unknown for a server status string."""
    key = " ".join(str(raw or "").split()).upper()
    return _STATES.get(key, "unknown")


@dataclass(frozen=True)
class ServerStatus:
    raw: str
    state: str
    error: str | None = None


class DrawClient:
    def __init__(
        self,
        base_url: str,
        access_token: str,
        refresh_token: str | None = None,
        client_id: str = "dicom-ops",
        verify: bool | str = True,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.verify = verify
        self.timeout = timeout
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> DrawClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- verbs -------------------------------------------------------------------------

    def health(self) -> None:
        """Returns when the server is ready; :class:`DrawBusy` on 503."""
        response = self._send("GET", "/api/health/", authenticated=False)
        self._check(response, "GET /api/health/")

    def models(self) -> list[dict]:
        endpoint = "GET /api/models/"
        response = self._call("GET", "/api/models/", endpoint)
        body = self._json(response, endpoint)
        if isinstance(body, dict):  # some servers wrap lists
            body = body.get("models", body.get("results"))
        if not isinstance(body, list):
            raise DrawRejected(f"{endpoint} answered without a list of models", endpoint=endpoint)
        return body

    def upload(self, zip_path: str | Path, checksum: str) -> str:
        """Send a zip (de-identified series + template); returns the server's task id."""
        endpoint = "POST /api/upload/"
        zip_path = Path(zip_path)

        def send() -> requests.Response:
            with zip_path.open("rb") as handle:
                return self._send(
                    "POST", "/api/upload/",
                    files={"file": (zip_path.name, handle, "application/zip")},
                    data={"checksum": checksum, "client_id": self.client_id},
                )

        response = self._with_refresh(send, endpoint)
        body = self._json(response, endpoint)
        task_id = None
        if isinstance(body, dict):  # older servers call the task id a transaction token
            task_id = body.get("task_id") or body.get("transaction_token")
        if not task_id:
            raise DrawRejected(f"{endpoint} answered {response.status_code} without a task id",
                               endpoint=endpoint, status_code=response.status_code)
        return str(task_id)

    def status(self, task_id: str) -> ServerStatus:
        path = f"/api/upload/{_segment(task_id)}/status/"
        endpoint = f"GET {path}"
        response = self._call("GET", path, endpoint)
        body = self._json(response, endpoint)
        if not isinstance(body, dict) or "status" not in body:
            raise DrawRejected(f"{endpoint} answered without a status", endpoint=endpoint)
        raw = str(body["status"])
        error = body.get("error") or body.get("error_message")
        return ServerStatus(raw=raw, state=normalise_status(raw),
                            error=str(error) if error else None)

    def download_rtstruct(self, task_id: str, dest_path: str | Path) -> str:
        """Stream the RTSTRUCT to ``dest_path`` (atomically) and return its sha256.

        The body is checked against ``X-File-Checksum`` before it is given its
        name; on a mismatch nothing is left at ``dest_path``.
        """
        path = f"/api/rtstruct/{_segment(task_id)}/"
        endpoint = f"GET {path}"
        dest_path = Path(dest_path)
        dest_path.parent.mkdir(parents=True, exist_ok=True)
        response = self._with_refresh(lambda: self._send("GET", path, stream=True), endpoint)
        with contextlib.closing(response):
            expected = (response.headers.get(CHECKSUM_HEADER) or "").strip().lower()
            if not expected:
                raise DrawChecksumMismatch(f"{endpoint} sent no {CHECKSUM_HEADER} header",
                                           endpoint=endpoint, status_code=response.status_code)
            digest = hashlib.sha256()
            try:
                with atomic_writer(dest_path, mode=DOWNLOAD_MODE) as handle:
                    for chunk in response.iter_content(_CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
                    actual = digest.hexdigest()
                    if actual != expected:  # raised inside: the body never gets its name
                        raise DrawChecksumMismatch(
                            f"{endpoint}: downloaded body has sha256 {actual}, "
                            f"{CHECKSUM_HEADER} says {expected}",
                            endpoint=endpoint, status_code=response.status_code)
            except requests.RequestException as exc:
                raise DrawTransientError(f"{endpoint}: download interrupted ({type(exc).__name__})",
                                         endpoint=endpoint) from exc
        return actual

    def confirm(self, task_id: str) -> None:
        """Tell the server the RTSTRUCT arrived; the server then deletes its copy."""
        path = f"/api/rtstruct/{_segment(task_id)}/confirm/"
        endpoint = f"POST {path}"
        payload = {
            "task_id": task_id,
            "status": "received",
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._call("POST", path, endpoint, json=payload)

    def refresh(self) -> None:
        """Exchange the refresh token for a new access token (and maybe a new refresh token)."""
        endpoint = "POST /api/token/refresh/"
        if not self.refresh_token:
            raise DrawAuthError(f"{endpoint}: no refresh token configured", endpoint=endpoint)
        response = self._send(
            "POST", "/api/token/refresh/", authenticated=False,
            json={"refresh_token": self.refresh_token, "client_id": self.client_id},
        )
        if response.status_code in (400, 401, 403):
            raise DrawAuthError(f"{endpoint} refused the refresh token ({response.status_code})",
                                endpoint=endpoint, status_code=response.status_code)
        self._check(response, endpoint)
        body = self._json(response, endpoint)
        if not isinstance(body, dict) or not (body.get("access_token") or body.get("access")):
            raise DrawAuthError(f"{endpoint} answered without an access token", endpoint=endpoint)
        access = body.get("access_token") or body.get("access")
        self.access_token = str(access)
        new_refresh = body.get("refresh_token") or body.get("refresh")
        if new_refresh:
            self.refresh_token = str(new_refresh)

    # --- plumbing ----------------------------------------------------------------------

    def _call(self, method: str, path: str, endpoint: str, **kwargs: Any) -> requests.Response:
        return self._with_refresh(lambda: self._send(method, path, **kwargs), endpoint)

    def _with_refresh(self, send: Callable[[], requests.Response], endpoint: str
                      ) -> requests.Response:
        response = send()
        if response.status_code == 401:
            response.close()
            if not self.refresh_token:
                raise DrawAuthError(f"{endpoint} answered 401 and there is no refresh token",
                                    endpoint=endpoint, status_code=401)
            self.refresh()
            response = send()
            if response.status_code == 401:
                response.close()
                raise DrawAuthError(f"{endpoint} answered 401 even after a token refresh",
                                    endpoint=endpoint, status_code=401)
        self._check(response, endpoint)
        return response

    def _send(self, method: str, path: str, *, authenticated: bool = True,
              **kwargs: Any) -> requests.Response:
        headers = {"Accept": "application/json"}
        if authenticated:
            headers["Authorization"] = f"Bearer {self.access_token}"
        try:
            return self._session.request(method, self.base_url + path, headers=headers,
                                         timeout=self.timeout, verify=self.verify, **kwargs)
        except requests.Timeout as exc:
            raise DrawTransientError(f"{method} {path}: timed out after {self.timeout:g} s",
                                     endpoint=f"{method} {path}") from exc
        except requests.RequestException as exc:
            raise DrawTransientError(
                f"{method} {path}: cannot reach {self.base_url} ({type(exc).__name__})",
                endpoint=f"{method} {path}") from exc

    @staticmethod
    def _check(response: requests.Response, endpoint: str) -> None:
        code = response.status_code
        if code < 400:
            return
        detail = _detail(response)
        retry_after = _retry_after(response)
        response.close()
        message = f"{endpoint} answered {code}" + (f": {detail}" if detail else "")
        if code == 503:
            raise DrawBusy(message, endpoint=endpoint, status_code=code, retry_after=retry_after)
        if code == 401:
            raise DrawAuthError(message, endpoint=endpoint, status_code=code)
        if code == 404:
            raise DrawNotFound(message, endpoint=endpoint, status_code=code)
        if code >= 500 or code in (408, 429):
            raise DrawTransientError(message, endpoint=endpoint, status_code=code)
        raise DrawRejected(message, endpoint=endpoint, status_code=code)

    @staticmethod
    def _json(response: requests.Response, endpoint: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise DrawTransientError(f"{endpoint} answered {response.status_code} with a body "
                                     "that is not JSON", endpoint=endpoint,
                                     status_code=response.status_code) from exc


def _segment(task_id: str) -> str:
    """A server's task id as one URL path segment, whatever characters it holds."""
    return quote(str(task_id), safe="")


def _detail(response: requests.Response) -> str:
    """The server's short explanation of an error, for the message."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:_DETAIL_CHARS]
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            if body.get(key):
                return str(body[key])[:_DETAIL_CHARS]
    return ""


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


__all__ = [
    "DrawAuthError", "DrawBusy", "DrawChecksumMismatch", "DrawClient", "DrawError",
    "DrawNotFound", "DrawRejected", "DrawTransientError", "ServerStatus", "normalise_status",
]
