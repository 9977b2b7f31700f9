"""Run one cleanup (retention per area, disk watermark, never work in flight) in a task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.operators.jobs import redacted_errors
from dicom_ops.cleanup.run import run_cleanup


class CleanupOperator(BaseOperator):
    """Logs the report (counts and bytes per area, what was skipped and why) and returns
    its numbers-only summary. Fails when an item could not be removed."""

    template_fields: Sequence[str] = ("dry_run", "older_than_hours")
    ui_color = "#eeeeee"

    def __init__(self, *, dry_run: bool | str = False,
                 older_than_hours: float | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dry_run = dry_run
        self.older_than_hours = older_than_hours

    def execute(self, context: Context) -> dict[str, object]:
        with redacted_errors("cleanup"):
            report = run_cleanup(task_settings(), dry_run=as_flag(self.dry_run),
                                 older_than_hours=as_hours(self.older_than_hours))
        for line in report.lines():
            self.log.info("%s", line)
        if report.errors:
            raise AirflowException(f"{report.errors} item(s) could not be removed; "
                                   "see the report above")
        return report.summary()


def as_flag(value: bool | str) -> bool:
    """A param as templated: a bool, or its text ("True", "false", "")."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes")


def as_hours(value: float | str | None) -> float | None:
    """A param as templated: a number, or its text; empty or "None" means no override."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    hours = float(value)
    if hours < 0:
        raise ValueError(f"older_than_hours must be 0 or more, not {hours:g}")
    return hours
