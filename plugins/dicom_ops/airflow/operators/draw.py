"""Operators that talk to the DRAW server through DrawHook: upload, poll, deliver."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.hooks.dicom_node import destination
from dicom_ops.airflow.hooks.draw import DrawHook
from dicom_ops.airflow.operators.jobs import JobStepOperator, redacted_errors
from dicom_ops.airflow.triggers.draw import DrawHealthTrigger
from dicom_ops.draw.errors import DrawBusy
from dicom_ops.pipeline.export import upload_prepared
from dicom_ops.pipeline.import_results import fetch_and_deliver, poll_transfers


class DrawUploadOperator(JobStepOperator):
    """Upload the job's zip. While the server is busy (503) the task waits in the
    triggerer, holding no worker or pool slot, and the job does not fail."""

    stage = "upload"
    template_fields: Sequence[str] = ("job_id", "draw_conn_id")

    def __init__(self, *, draw_conn_id: str = DrawHook.default_conn_name,
                 busy_poll_seconds: float = 30.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.draw_conn_id = draw_conn_id
        self.busy_poll_seconds = busy_poll_seconds

    def run_step(self, job_id: int, context: Context) -> None:
        try:
            with DrawHook(self.draw_conn_id) as client:
                task_id = upload_prepared(task_settings(), job_id, client)
        except DrawBusy as busy:
            # Honour the server's Retry-After, within sane bounds.
            poll = min(max(busy.retry_after or self.busy_poll_seconds, 2.0), 300.0)
            self.log.info("DRAW server busy; job %d waits for it in the triggerer "
                          "(checking every %.0f s)", job_id, poll)
            self.defer(
                trigger=DrawHealthTrigger(self.draw_conn_id, poll),
                method_name="execute_complete",
                timeout=timedelta(hours=task_settings().import_deadline_hours),
            )  # raises TaskDeferred: the task continues in execute_complete
        else:
            self.log.info("job %d is server task %s", job_id, task_id)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> int:
        """Resume once the server is ready: run the upload step again; fail when it
        stayed busy or unreachable past the trigger's deadline."""
        if event.get("status") != "ready":
            self.fail_job_now(int(self.job_id), self.stage,
                              event.get("message", "DRAW server not available"))
        return self.execute(context)

    # Tasks deferred before the rename resume by the method name stored with them.
    resume_after_busy = execute_complete


class DrawPollOperator(BaseOperator):
    """Ask the server about every waiting transfer; returns the job ids ready to deliver."""

    template_fields: Sequence[str] = ("draw_conn_id",)
    ui_color = "#f2e6d9"

    def __init__(self, *, draw_conn_id: str = DrawHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.draw_conn_id = draw_conn_id

    def execute(self, context: Context) -> list[int]:
        with redacted_errors("polling the DRAW server"), DrawHook(self.draw_conn_id) as client:
            report = poll_transfers(task_settings(), client)
        self.log.info("poll: %s", report.summary())
        return report.ready


class DeliverResultOperator(JobStepOperator):
    """Fetch + verify the RTSTRUCT, validate and re-identify it (fail closed), write it
    into the series' origin folder, send it to the destinations (C-STORE or STOW-RS),
    then confirm."""

    stage = "deliver"
    template_fields: Sequence[str] = ("job_id", "draw_conn_id")

    def __init__(self, *, draw_conn_id: str = DrawHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.draw_conn_id = draw_conn_id

    def run_step(self, job_id: int, context: Context) -> None:
        settings = task_settings()
        nodes = [destination(conn_id) for conn_id in settings.destinations]
        with DrawHook(self.draw_conn_id) as client:
            path = fetch_and_deliver(settings, job_id, client, nodes)
        self.log.info("job %d delivered as %s", job_id, path.name)
