"""The ``drop_after_upload`` fault: an upload is stored and processed, but the client
never hears back, because the connection is closed before the answer is sent.

This is what a client sees when a proxy or the network drops the connection after
the request went out: the server has a task, the client has no task id. It cannot
be done inside an endpoint (FastAPI always answers), so it is a pure ASGI
middleware that holds back the upload's answer and, when the fault takes it,
closes the HTTP connection under it instead of sending it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from dicom_ops.devtools.emulator.faults import Faults

log = logging.getLogger("dicom_ops.devtools.emulator")

UPLOAD_PATH = "/api/upload/"


class DropAfterUpload:
    """Wraps the app; only successful ``POST /api/upload/`` answers can be dropped."""

    def __init__(self, app: Any, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not (scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"] == UPLOAD_PATH):
            await self.app(scope, receive, send)
            return
        held: list[dict] = []

        async def hold(message: dict) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        status = next((m["status"] for m in held if m["type"] == "http.response.start"), None)
        if status == 200 and self.faults.take("drop_after_upload"):
            log.info("task %s: received, then the connection was dropped before the answer "
                     "(fault drop_after_upload)", _task_id(held))
            _close_connection(receive)
            await asyncio.sleep(0)  # let the server see the connection is gone
            return
        for message in held:
            await send(message)


def _close_connection(receive: Any) -> None:
    """Close the TCP connection of this request (uvicorn's request cycle owns it)."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("drop_after_upload needs uvicorn (no transport on the request)")
    transport.close()


def _task_id(held: list[dict]) -> str:
    body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
    try:
        answer = json.loads(body)
    except ValueError:
        return "?"
    return str(answer.get("task_id") or answer.get("transaction_token") or "?")
