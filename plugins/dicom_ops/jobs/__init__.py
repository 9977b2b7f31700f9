"""Jobs: the status machine, creation (duplicates, resend), claims, image ranges, planning.

The status machine lives in ``lifecycle`` (``JobStatus``, the moves, the predicates such
as ``is_running``); nothing else changes ``Job.status``.
"""

from dicom_ops.db.audit import record_event
from dicom_ops.jobs.claims import claim_next_job, claim_ready_series
from dicom_ops.jobs.create import SeriesChoice, create_job, find_duplicate, resend_job
from dicom_ops.jobs.errors import DuplicateJob, JobError, RangeError, TransitionRefused
from dicom_ops.jobs.images import SeriesImages, images_for_job
from dicom_ops.jobs.lifecycle import (
    INACTIVE_STATUSES,
    TRANSITIONS,
    JobStatus,
    cancel_job,
    fail_job,
    finish_job,
    get_job,
    invalidate_job,
    next_status,
    set_stage,
    start_job,
)
from dicom_ops.jobs.planning import plan_ready_series, plan_series, read_series_headers
from dicom_ops.jobs.ranges import (
    ImageRange,
    InstanceInfo,
    auto_range,
    check_range,
    parse_range,
    read_instances,
    select_images,
)

__all__ = [
    "INACTIVE_STATUSES",
    "TRANSITIONS",
    "DuplicateJob",
    "ImageRange",
    "InstanceInfo",
    "JobError",
    "JobStatus",
    "RangeError",
    "SeriesChoice",
    "SeriesImages",
    "TransitionRefused",
    "auto_range",
    "cancel_job",
    "check_range",
    "claim_next_job",
    "claim_ready_series",
    "create_job",
    "fail_job",
    "find_duplicate",
    "finish_job",
    "get_job",
    "images_for_job",
    "invalidate_job",
    "next_status",
    "parse_range",
    "plan_ready_series",
    "plan_series",
    "read_instances",
    "read_series_headers",
    "record_event",
    "resend_job",
    "select_images",
    "set_stage",
    "start_job",
]
