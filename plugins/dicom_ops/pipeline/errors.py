"""Errors that end a job: the pipeline marks the job failed with the stage and reason."""

from __future__ import annotations

import re


class JobFailed(Exception):
    """A permanent failure of one job. The message reaches the UI: never put PHI in it."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


class StepError(Exception):
    """An unexpected (retryable) failure, its message stripped of identifiers."""


# Dotted numbers of three or more parts: DICOM UIDs, also inside datastore paths.
_UID_LIKE = re.compile(r"\d+(?:\.\d+){2,}")


def redact_identifiers(text: str) -> str:
    """``text`` with every UID-like token replaced, for messages that reach the UI."""
    return _UID_LIKE.sub("<uid>", text)
