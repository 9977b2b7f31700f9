"""A stand-in for the API server's Execution API health route, on loopback, that can come
up late: what the executors' wait (``dicom_ops.airflow.executors.execution_api``) sees
while `airflow api-server` is still starting. Before ``listen()`` nothing listens on
its port (connection refused, as then); ``status`` is what ``/execution/health`` answers.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class LateExecutionApi:
    def __init__(self) -> None:
        with socket.socket() as probe:  # a port nothing listens on until listen()
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.status = 200
        self.health_checks = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/execution/"

    def listen(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path == "/execution/health":
                    api.health_checks += 1
                    self.send_response(api.status)
                else:
                    self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def late_execution_api(monkeypatch) -> Iterator[LateExecutionApi]:
    """Not yet listening; Airflow's configured Execution API URL points at it."""
    api = LateExecutionApi()
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", api.url)
    yield api
    api.close()


@pytest.fixture
def live_execution_api(late_execution_api) -> LateExecutionApi:
    """Listening and healthy, as on a running stack."""
    late_execution_api.listen()
    return late_execution_api
