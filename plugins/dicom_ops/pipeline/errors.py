"""Errors that end a job: the pipeline marks the job failed with the stage and reason."""

from __future__ import annotations


class JobFailed(Exception):
    """A permanent failure of one job. The message reaches the UI: never put PHI in it."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
