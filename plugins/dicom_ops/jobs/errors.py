"""Why a job request was refused. Messages are shown to users: ids and statuses, never PHI."""

from __future__ import annotations


class JobError(Exception):
    """A request about jobs that cannot be honoured; the message says why in one line."""


class TransitionRefused(JobError):
    """A status move the machine does not allow; the message names the current status."""

    def __init__(self, job_id: int, status: str, action: str, message: str):
        self.job_id = job_id
        self.status = status
        self.action = action
        super().__init__(message)


class DuplicateJob(JobError):
    """An equal job already exists (and counts); ``existing_job_id`` names it."""

    def __init__(self, existing_job_id: int, existing_status: str):
        self.existing_job_id = existing_job_id
        self.existing_status = existing_status
        super().__init__(
            f"duplicate of job {existing_job_id} ({existing_status}): same template, series "
            "and ranges; use force (--force) to create it anyway"
        )


class RangeError(JobError, ValueError):
    """An image range that breaks a rule, or that the series cannot satisfy."""
