"""DrawHook: owns the `draw_default` connection and the DRAW client built from it.

Connection fields: host, port, schema (``http`` or ``https``; default https),
password = access token; extra = ``{"refresh_token": ..., "client_id": ...,
"verify": true | false | "/path/to/ca.pem"}``. Tokens renewed by a refresh are kept
in ``<data root>/draw_tokens/<conn id>.json`` (mode 600), so a server that rotates
refresh tokens keeps working across tasks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.draw.client import DrawClient
from dicom_ops.files import write_atomically


class DrawHook(BaseHook):
    conn_name_attr = "draw_conn_id"
    default_conn_name = "draw_default"
    conn_type = "http"
    hook_name = "DRAW autosegmentation server"

    def __init__(self, draw_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.draw_conn_id = draw_conn_id
        self._client: DrawClient | None = None

    @property
    def token_cache(self) -> Path:
        return task_settings().data_root / "draw_tokens" / f"{self.draw_conn_id}.json"

    def get_client(self) -> DrawClient:
        if self._client is None:
            connection = self.get_connection(self.draw_conn_id)
            if not connection.host:
                raise ValueError(f"Airflow connection {self.draw_conn_id!r} has no host")
            extra: dict[str, Any] = connection.extra_dejson
            scheme = connection.schema or "https"
            port = f":{connection.port}" if connection.port else ""
            access, refresh = connection.password, extra.get("refresh_token")
            cached = self._read_cached_tokens()
            if cached.get("seeded_from") == _fingerprint(access, refresh):
                access, refresh = cached["access_token"], cached.get("refresh_token")
            self._client = DrawClient(
                f"{scheme}://{connection.host}{port}",
                access_token=access or "",
                refresh_token=refresh,
                client_id=extra.get("client_id", "dicom-ops"),
                verify=extra.get("verify", True),
            )
            self._seed = _fingerprint(connection.password, extra.get("refresh_token"))
        return self._client

    def keep_tokens(self) -> None:
        """Remember refreshed tokens for the next task (no-op when nothing changed)."""
        client = self._client
        if client is None:
            return
        payload = {"seeded_from": self._seed, "access_token": client.access_token,
                   "refresh_token": client.refresh_token}
        if payload == self._read_cached_tokens():
            return
        self.token_cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(self.token_cache, json.dumps(payload).encode(), mode=0o600)

    def _read_cached_tokens(self) -> dict[str, Any]:
        try:
            return json.loads(self.token_cache.read_text())
        except (FileNotFoundError, ValueError):
            return {}


def _fingerprint(access: str | None, refresh: str | None) -> str:
    """Changes when an operator edits the connection's tokens, invalidating the cache."""
    return hashlib.sha256(f"{access}\0{refresh}".encode()).hexdigest()[:16]

