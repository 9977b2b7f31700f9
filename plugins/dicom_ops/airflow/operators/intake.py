"""Operators that bring series in from Airflow: the cached queue's backlog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.operators.jobs import redacted_errors
from dicom_ops.intake.cached_queue import register_backlog


class RegisterQueuedFoldersOperator(BaseOperator):
    """Register up to ``number`` finished queue folders, oldest first, as ready series;
    returns the run's numbers-only summary. Skips when no series became ready, so the
    task's outlets (``series_ready``) announce only runs that made something ready."""

    template_fields: Sequence[str] = ("number", "subfolder")
    ui_color = "#e4ecf7"

    def __init__(self, *, number: int | str = 50, subfolder: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.number = number
        self.subfolder = subfolder  # a queue folder's name; empty or None: all of them

    def execute(self, context: Context) -> dict[str, object]:
        settings, number = task_settings(), int(self.number)
        with redacted_errors("registering queued folders"):
            result = register_backlog(settings, number=number, subfolder=self.subfolder or None)
        if not result.series_ids:
            raise AirflowSkipException(f"no series became ready: {result.summary()}")
        self.log.info("%d series ready from %d folder(s)", len(result.series_ids),
                      len(result.registered))
        return result.summary()
