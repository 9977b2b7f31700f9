"""DrawHook: owns the `draw_default` connection and the DRAW client built from it.

Connection fields: host, port, schema (``http`` or ``https``; default https),
password = access token; extra = ``{"refresh_token": ..., "client_id": ...,
"verify": true | false | "/path/to/ca.pem"}``. Tokens renewed by a refresh are kept
in ``<data root>/draw_tokens/<conn id>.json`` (mode 600), so a server that rotates
refresh tokens keeps working across tasks.

Use it as a context manager; the client it yields is built once, and tokens a refresh
renewed are kept on the way out, also when the block raised (a refresh may have
happened before the failure, and the old refresh token may no longer work)::

    with DrawHook(self.draw_conn_id) as client:
        poll_transfers(settings, client)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import TracebackType
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
        self._tokens_at_build: tuple[str, str | None] | None = None

    def __enter__(self) -> DrawClient:
        return self.get_client()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.keep_tokens()

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
            self._tokens_at_build = (self._client.access_token, self._client.refresh_token)
        return self._client

    def keep_tokens(self) -> None:
        """Remember refreshed tokens for the next task (no-op when nothing changed)."""
        client = self._client
        if client is None or (client.access_token, client.refresh_token) == self._tokens_at_build:
            return  # no refresh: what the next task reads (connection or cache) is still right
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

