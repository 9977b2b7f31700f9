"""Triggers that watch the DRAW server from the triggerer, holding no worker slot.

``DrawHealthTrigger`` waits while the server answers 503 (busy) and lets a deferred
upload continue when it is ready. ``DrawResultsTrigger`` is the event trigger behind
the ``draw_results`` asset: it polls the server for the transfers still waiting and
fires when one of them is finished there (completed, failed or gone), so
``draw_import`` runs within seconds instead of at its next interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from dicom_ops.airflow.triggers.blocking import run_blocking
from dicom_ops.draw.errors import DrawBusy, DrawError, DrawNotFound


class DrawHealthTrigger(BaseTrigger):
    def __init__(self, draw_conn_id: str = "draw_default", poll_seconds: float = 30.0,
                 timeout_seconds: float = 6 * 3600) -> None:
        super().__init__()
        self.draw_conn_id = draw_conn_id
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{__name__}.DrawHealthTrigger",
                {"draw_conn_id": self.draw_conn_id, "poll_seconds": self.poll_seconds,
                 "timeout_seconds": self.timeout_seconds})

    def _healthy(self) -> bool:
        from dicom_ops.airflow.hooks.draw import DrawHook

        try:
            with DrawHook(self.draw_conn_id) as client:
                client.health()
        except (DrawBusy, DrawError):
            return False
        return True

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = time.monotonic() + self.timeout_seconds
        while time.monotonic() < deadline:
            if await run_blocking(self._healthy):
                yield TriggerEvent({"status": "ready"})
                return
            await asyncio.sleep(self.poll_seconds)
        yield TriggerEvent({"status": "error",
                            "message": f"DRAW server busy or unreachable for "
                                       f"{self.timeout_seconds:.0f} s"})


class DrawResultsTrigger(BaseEventTrigger):
    def __init__(self, draw_conn_id: str = "draw_default", poll_seconds: float = 5.0) -> None:
        super().__init__()
        self.draw_conn_id = draw_conn_id
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{__name__}.DrawResultsTrigger",
                {"draw_conn_id": self.draw_conn_id, "poll_seconds": self.poll_seconds})

    def _finished_on_server(self) -> set[str]:
        """Task ids of waiting transfers that the server has finished with, one way or another."""
        from dicom_ops.airflow.app_settings import task_settings
        from dicom_ops.airflow.hooks.draw import DrawHook
        from dicom_ops.pipeline.import_results import pending_transfers

        waiting = pending_transfers(task_settings())
        if not waiting:
            return set()
        finished = set()
        with DrawHook(self.draw_conn_id) as client:
            for _job_id, task_id in waiting:
                try:
                    if client.status(task_id).state in ("completed", "failed"):
                        finished.add(task_id)
                except DrawNotFound:
                    finished.add(task_id)
                except DrawError:
                    continue  # the next poll will ask again; the 15-minute schedule is the net
        return finished

    async def run(self) -> AsyncIterator[TriggerEvent]:
        announced: set[str] = set()
        while True:
            try:
                finished = await run_blocking(self._finished_on_server)
            except Exception as exc:  # keep watching: a DB or config hiccup must not stop it
                self.log.warning("DRAW results poll failed: %s", exc)
                finished = set()
            new = finished - announced
            if new:
                announced |= new
                yield TriggerEvent({"status": "results", "count": len(new)})
            announced &= finished | new  # forget tasks that left the waiting list
            await asyncio.sleep(self.poll_seconds)
