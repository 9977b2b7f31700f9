"""Where a job's files live while it is processed: ``<data root>/work/job-<id>/``."""

from __future__ import annotations

import re
from pathlib import Path

from dicom_ops.config import Settings

_JOB_DIR = re.compile(r"^job-(\d+)$")


def job_work_dir(settings: Settings, job_id: int) -> Path:
    return settings.work_dir / f"job-{job_id}"


def job_id_of_work_dir(path: Path) -> int | None:
    """The job a work folder belongs to, or None for anything else found in work/."""
    match = _JOB_DIR.match(path.name)
    return int(match.group(1)) if match else None
